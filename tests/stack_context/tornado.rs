//! Ports of Tornado's `stack_context_test.py` (v4.5): library contexts,
//! deactivation and its order, isolation, and yielding outside `with`.

use super::*;

#[test]
fn tornado_exit_library_context() {
    // A library captures the caller's context with `wrap`, then schedules its
    // own work in a context of its own; the application's callback, called
    // from there, runs with the application context innermost.
    let io_loop = new_loop();
    let active = new_log();
    let done = Rc::new(Cell::new(false));

    let library_function = {
        let (l, active) = (io_loop.clone(), active.clone());
        move |callback: Box<dyn FnOnce()>| {
            let callback = wrap(callback);
            let a = active.clone();
            named(&active, "library").run(|| {
                l.add_callback(move || {
                    assert_eq!(
                        a.borrow()[a.borrow().len() - 2..],
                        ["application", "library"]
                    );
                    callback();
                });
            });
        }
    };
    let final_callback = {
        let (l, active, done) = (io_loop.clone(), active.clone(), done.clone());
        move || {
            // As in Tornado: the full stack is [application, library,
            // application]; the application context is innermost.
            assert_eq!(*active.borrow(), ["application", "library", "application"]);
            done.set(true);
            l.stop();
        }
    };
    named(&active, "application").run(|| library_function(Box::new(final_callback)));
    run(&io_loop);
    assert!(done.get());
    assert!(active.borrow().is_empty());
}

#[test]
fn tornado_deactivate() {
    let io_loop = new_loop();
    let active = new_log();
    let deactivations: Rc<RefCell<Vec<Deactivate>>> = Rc::default();
    let (l, a, d) = (io_loop.clone(), active.clone(), deactivations.clone());
    let f5 = move || {
        assert_eq!(*a.borrow(), ["c1", "c3"]);
        l.stop();
    };
    let (l, a, d4) = (io_loop.clone(), active.clone(), d.clone());
    let f4 = move || {
        assert_eq!(*a.borrow(), ["c1", "c2", "c3"]);
        d4.borrow()[1].deactivate();
        // Deactivating does not remove a context at once...
        assert_eq!(*a.borrow(), ["c1", "c2", "c3"]);
        // ...but it is gone from the next callback.
        l.add_callback(f5);
    };
    let step = |name: &'static str, next: Box<dyn FnOnce()>| {
        let (l, a, d) = (io_loop.clone(), active.clone(), d.clone());
        move || {
            let ((), deactivate) = named(&a, name).run_deactivatable(|| l.add_callback(next));
            d.borrow_mut().push(deactivate);
        }
    };
    let f3 = step("c3", Box::new(f4));
    let f2 = step("c2", Box::new(f3));
    let f1 = step("c1", Box::new(f2));
    io_loop.add_callback(f1);
    run(&io_loop);
    assert_eq!(deactivations.borrow().len(), 3);
}

#[test]
fn tornado_deactivate_order() {
    // Deactivating the outermost, middle or innermost of three contexts.
    let active = new_log();
    let make_wrapped = || {
        NullContext::run(|| {
            let a = active.clone();
            let check = move || a.borrow().clone();
            let (((callback, d2), d1), d0) = named(&active, "c0").run_deactivatable(|| {
                named(&active, "c1").run_deactivatable(|| {
                    named(&active, "c2").run_deactivatable(|| {
                        let result = Rc::new(RefCell::new(None));
                        let r = result.clone();
                        let f = wrap(move || *r.borrow_mut() = Some(check()));
                        (f, result)
                    })
                })
            });
            (callback, [d0, d1, d2])
        })
    };
    type Seen = Rc<RefCell<Option<Vec<String>>>>;
    let call = |(f, result): (Box<dyn FnOnce()>, Seen)| {
        f();
        let got = result.borrow_mut().take();
        got.unwrap()
    };

    let ((f, r), _) = make_wrapped();
    assert_eq!(call((Box::new(f), r)), ["c0", "c1", "c2"]);
    for (which, expected) in [(0, ["c1", "c2"]), (1, ["c0", "c2"]), (2, ["c0", "c1"])] {
        let ((f, r), deactivations) = make_wrapped();
        deactivations[which].deactivate();
        assert_eq!(call((Box::new(f), r)), expected);
    }
    assert!(active.borrow().is_empty());
}

#[test]
fn tornado_isolation_nonempty() {
    // f2 is wrapped in c1 and happens to be called in c2: the callback it
    // schedules carries c1, not c2.
    let io_loop = new_loop();
    let active = new_log();
    let done = Rc::new(Cell::new(false));
    let (l, a, d) = (io_loop.clone(), active.clone(), done.clone());
    let f3 = move || {
        assert!(a.borrow().iter().any(|c| c == "c1"));
        assert!(!a.borrow().iter().any(|c| c == "c2"));
        d.set(true);
        l.stop();
    };
    let (l, a) = (io_loop.clone(), active.clone());
    let f2 = move || {
        assert!(a.borrow().iter().any(|c| c == "c1"));
        l.add_callback(f3);
    };
    let a = active.clone();
    io_loop.add_callback(move || {
        let wrapped = named(&a, "c1").run(|| wrap(f2));
        named(&a, "c2").run(wrapped);
    });
    run(&io_loop);
    assert!(done.get());
}

#[test]
fn tornado_isolation_empty() {
    // As above, with the chain started under no context at all.
    let io_loop = new_loop();
    let active = new_log();
    let done = Rc::new(Cell::new(false));
    let (l, a, d) = (io_loop.clone(), active.clone(), done.clone());
    let f3 = move || {
        assert!(a.borrow().is_empty(), "{:?}", a.borrow());
        d.set(true);
        l.stop();
    };
    let l = io_loop.clone();
    let f2 = move || l.add_callback(f3);
    let a = active.clone();
    io_loop.add_callback(move || {
        let wrapped = NullContext::run(|| wrap(f2));
        named(&a, "c2").run(wrapped);
    });
    run(&io_loop);
    assert!(done.get());
}

#[test]
fn tornado_yield_outside_with() {
    // A callback scheduled inside a context, completing a future the test
    // waits on outside it.
    let active = new_log();
    let a = active.clone();
    let seen = squall::testing::gen_test(move |io_loop| {
        let future = Future::new();
        let f = future.clone();
        let a2 = a.clone();
        named(&a, "c1").run(|| {
            io_loop.add_callback(move || f.set_result(a2.borrow().clone()));
        });
        future
    });
    assert_eq!(seen, ["c1"]);
}
