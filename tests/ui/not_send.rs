// Items, a source or an `f` that cannot cross threads: the error names `Send`.
use lazy_par_map::prelude::*;
use std::rc::Rc;

fn rc_items() {
    let _ = (0..3).map(Rc::new).lazy_par_map(|x| *x + 1);
}

fn vec_of_rc() {
    let shared = vec![Rc::new(1), Rc::new(2)];
    let _ = shared.into_iter().lazy_par_map(|x| *x + 1);
}

fn rc_source() {
    let offset = Rc::new(1);
    let _ = (0..3).map(move |x| x + *offset).lazy_par_map(|x| x + 1);
}

fn rc_in_f() {
    let offset = Rc::new(1);
    let _ = (0..3).lazy_par_map(move |x| x + *offset);
}

fn rc_items_try() {
    let _ = (0..3).map(Rc::new).try_lazy_par_map(|x| Ok::<i32, ()>(*x));
}

fn rc_items_readahead() {
    let _ = (0..3).map(Rc::new).readahead(2);
}

fn main() {
    rc_items();
    vec_of_rc();
    rc_source();
    rc_in_f();
    rc_items_try();
    rc_items_readahead();
}
