// A source that borrows from the stack: the error names `'static`.
use lazy_par_map::prelude::*;

fn local_vec() -> Vec<i32> {
    let v = vec![1, 2, 3];
    v.iter().lazy_par_map(|x| x * 2).collect()
}

fn borrowed_param(v: &[i32]) -> Vec<i32> {
    v.iter().lazy_par_map(|x| x * 2).collect()
}

fn generic<I: Iterator<Item = u8> + Send>(source: I) -> Vec<u8> {
    source.lazy_par_map(|x| x + 1).collect()
}

fn main() {
    local_vec();
    borrowed_param(&[1]);
    generic(0..3u8);
}
