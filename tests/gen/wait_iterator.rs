//! `WaitIterator`: completion order, done futures, nothing to wait for.

use super::*;

#[test]
fn wait_iterator_in_completion_order_with_current_index() {
    let got = run(|_| {
        let futures = vec![
            future_after(30, Ok("a")),
            future_after(10, Ok("b")),
            Future::ready("c"),
            future_after(20, Err(Error::other("d failed"))),
        ];
        let mut it = WaitIterator::new(futures);
        let mut seen: Vec<String> = Vec::new();
        gen::coroutine(gen::from_fn((), move |_, input| {
            match input {
                Resume::Start => {}
                Resume::Value(v) => match v.downcast::<(usize, &str)>() {
                    Ok((i, s)) => {
                        assert_eq!(it.current_index(), Some(i));
                        seen.push(format!("{i}:{s}"));
                    }
                    Err(err) => return Step::Return(Err(err)),
                },
                Resume::Error(err) => {
                    seen.push(format!("{}!{}", it.current_index().unwrap(), err.message()))
                }
            }
            if it.done() {
                Step::Return(Ok(seen.clone()))
            } else {
                it.next().into()
            }
        }))
    });
    assert_eq!(got, ["2:c", "1:b", "3!d failed", "0:a"]);
}

#[test]
fn wait_iterator_of_done_futures_in_index_order() {
    let futures = vec![Future::ready(10), Future::ready(11), Future::ready(12)];
    let mut it = WaitIterator::new(futures);
    let future = gen::coroutine(gen::from_fn(
        Vec::new(),
        move |seen: &mut Vec<(usize, i32)>, input| {
            if let Resume::Value(v) = input {
                match v.downcast() {
                    Ok(pair) => seen.push(pair),
                    Err(err) => return Step::Return(Err(err)),
                }
            }
            if it.done() {
                Step::Return(Ok(std::mem::take(seen)))
            } else {
                it.next().into()
            }
        },
    ));
    assert_eq!(future.result().unwrap(), [(0, 10), (1, 11), (2, 12)]);
}

#[test]
fn wait_iterator_of_nothing_is_done() {
    let it = WaitIterator::<u8>::new(Vec::new());
    assert!(it.done());
    assert_eq!(it.current_index(), None);
}
