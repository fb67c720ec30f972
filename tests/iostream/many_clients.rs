//! A thousand concurrent echo clients on one loop.

use super::*;

#[test]
fn thousand_concurrent_echo_clients() {
    use socket2::{Domain, Socket, Type};
    const CLIENTS: usize = 1000;
    AsyncTest::new()
        .timeout(Duration::from_secs(60))
        .run(|io_loop| {
            let sock = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
            sock.set_reuse_address(true).unwrap();
            sock.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
                .unwrap();
            sock.listen(CLIENTS as i32 + 24).unwrap();
            let listener: TcpListener = sock.into();
            listener.set_nonblocking(true).unwrap();
            let addr = listener.local_addr().unwrap();

            fn serve(stream: IOStream) {
                let s = stream.clone();
                stream.read_until_max_bytes(b"\n", 1024).add_done_callback(
                    move |f: &Future<Vec<u8>>| {
                        if let Ok(line) = f.take_result() {
                            drop(s.write(line));
                            serve(s);
                        }
                    },
                );
            }
            let accepted = Rc::new(Cell::new(0usize));
            let listener = Rc::new(listener);
            {
                let (l, accepted) = (listener.clone(), accepted.clone());
                io_loop
                    .add_handler(
                        &*listener,
                        move |_, _| loop {
                            match l.accept() {
                                Ok((conn, _)) => {
                                    accepted.set(accepted.get() + 1);
                                    serve(IOStream::new(conn).unwrap());
                                }
                                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                                Err(e) => panic!("accept: {e}"),
                            }
                        },
                        Events::READ,
                    )
                    .unwrap();
            }

            let answers: Vec<Future<()>> = (0..CLIENTS)
                .map(|i| {
                    and_then(&IOStream::connect(addr), move |stream| {
                        let msg = format!("hello from client {i}\n").into_bytes();
                        drop(stream.write(msg.clone()));
                        and_then(&stream.read_until(b"\n"), move |reply| {
                            assert_eq!(reply, msg);
                            stream.close();
                            Future::ready(())
                        })
                    })
                })
                .collect();
            let io = io_loop.clone();
            and_then(&join_all(answers), move |results| {
                let failures: Vec<String> = results
                    .iter()
                    .filter_map(|r| r.as_ref().err().map(ToString::to_string))
                    .collect();
                assert!(
                    failures.is_empty(),
                    "{} failed: {:?}",
                    failures.len(),
                    &failures[..failures.len().min(5)]
                );
                assert_eq!(accepted.get(), CLIENTS);
                io.remove_handler(&*listener);
                Future::ready(())
            })
        });
}
