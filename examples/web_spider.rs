//! Tornado's classic queue demo, the web spider: a crawler with a bounded
//! number of workers sharing one `Queue`, run against a small site that
//! squall's own HTTP server serves on the same loop.
//!
//! Tornado's version (`demos/webspider`), in short:
//!
//! ```python
//! async def worker():
//!     async for url in q:
//!         if url is None:
//!             return
//!         try:
//!             await fetch_url(url)      # fetch, parse links, q.put() new ones
//!         except Exception as e:
//!             dead.add(url)
//!         finally:
//!             q.task_done()
//!
//! await q.put(base_url)
//! workers = gen.multi([worker() for _ in range(concurrency)])
//! await q.join(timeout=timedelta(seconds=300))
//! assert fetching == (fetched | dead)
//! for _ in range(concurrency):
//!     await q.put(None)
//! await workers
//! ```
//!
//! Here each worker is a generator (`gen::from_fn`, an explicit state
//! machine) run by `gen::coroutine`; its awaits are yields of
//! `YieldFuture`s: `q.get()`, `client.fetch(url)`, `q.put(link)`. The site
//! has `PAGES` pages, each answered after `PAGE_DELAY` (the handler waits
//! with the loop, it does not block), linking to other pages, to one
//! external site (not followed), and some to pages that do not exist (404:
//! counted dead). Ten workers crawl it in about `PAGES / 10 × PAGE_DELAY`;
//! one worker would take `PAGES × PAGE_DELAY`. The program checks that every
//! page was fetched once, the broken links are the dead ones, and the
//! crawl overlapped.
//!
//! Usage: `web_spider [CONCURRENCY]` (default 10).

use squall::netutil::BindOptions;
use std::cell::RefCell;
use std::collections::{BTreeSet, VecDeque};
use std::rc::Rc;
use std::time::{Duration, Instant};

use squall::gen::{self, Multi, Resume, Step, YieldFuture, YieldPoint};
use squall::http::HTTPServer;
use squall::httpclient::{AsyncHTTPClient, HTTPResponse};
use squall::queues::Queue;
use squall::web::{Application, Exchange, RequestHandler};
use squall::{Error, ErrorKind, IOLoop};

/// Pages on the site: `/page/0` .. `/page/{PAGES-1}`.
const PAGES: usize = 60;
/// How long the server takes over each page.
const PAGE_DELAY: Duration = Duration::from_millis(50);

// ----- the site ---------------------------------------------------------------

/// The links on page `n`: a binary tree (children and parent), a link back
/// to the start, an external link, and on every seventh page a broken one.
fn page_links(n: usize) -> Vec<String> {
    let mut links = vec!["/page/0".to_string(), "http://example.invalid/".to_string()];
    for m in [2 * n + 1, 2 * n + 2, n / 2] {
        if m < PAGES {
            links.push(format!("/page/{m}#section"));
        }
    }
    if n % 7 == 3 {
        links.push(format!("/missing/{n}"));
    }
    links
}

struct Page;
impl RequestHandler for Page {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        let n: usize = match x.request().path_arg("n").and_then(|n| n.parse().ok()) {
            Some(n) if n < PAGES => n,
            _ => {
                x.send_error(404);
                return Ok(());
            }
        };
        // Answer later, with the loop free meanwhile: a slow page.
        x.set_async();
        let x = x.clone();
        IOLoop::current().call_later(PAGE_DELAY, move || {
            x.set_header("Content-Type", "text/html")?;
            x.write(format!("<html><body><h1>Page {n}</h1>"));
            for link in page_links(n) {
                x.write(format!("<a href=\"{link}\">{link}</a> "));
            }
            x.write("</body></html>");
            x.finish()
        });
        Ok(())
    }
}

// ----- the crawler ------------------------------------------------------------

/// What the workers share (Tornado's closure variables).
struct Crawl {
    base: String,
    queue: Queue<Option<String>>,
    client: AsyncHTTPClient,
    fetching: BTreeSet<String>,
    fetched: BTreeSet<String>,
    dead: BTreeSet<String>,
}

/// The `href="..."` targets in a page (Tornado's demo uses `HTMLParser`).
fn get_links(html: &str) -> Vec<String> {
    let mut links = Vec::new();
    let mut rest = html;
    while let Some(at) = rest.find("href=\"") {
        rest = &rest[at + 6..];
        let Some(end) = rest.find('"') else { break };
        links.push(rest[..end].to_string());
        rest = &rest[end..];
    }
    links
}

/// `urljoin(base, link)` with the fragment removed (`urldefrag`).
fn absolute(base: &str, link: &str) -> String {
    let link = link.split('#').next().unwrap_or("");
    if link.starts_with("http://") {
        link.to_string()
    } else {
        format!("{}{}", base.trim_end_matches('/'), link)
    }
}

/// Where a worker is in its loop.
enum Worker {
    /// Waiting for `q.get()`.
    Getting,
    /// Waiting for the page at this URL.
    Fetching(String),
    /// Putting new links on the queue, one `q.put()` at a time.
    Putting(VecDeque<String>),
}

/// One worker: `async for url in q: ...` as a state machine, returning how
/// many pages it fetched. Every arm ends
/// by saying what to wait for next.
fn worker(id: usize, crawl: Rc<RefCell<Crawl>>) -> impl gen::Generator<Output = usize> {
    let mut pages = 0;
    gen::from_fn(Worker::Getting, move |state: &mut Worker, input: Resume| {
        let queue = crawl.borrow().queue.clone();
        match (std::mem::replace(state, Worker::Getting), input) {
            (Worker::Getting, Resume::Start) => {}
            (Worker::Getting, Resume::Value(url)) => {
                let url = match url.downcast::<Option<String>>() {
                    Ok(Some(url)) => url,
                    // `None`: the crawl is over.
                    Ok(None) => return Step::Return(Ok(pages)),
                    Err(err) => return Step::Return(Err(err)),
                };
                let first_time = crawl.borrow_mut().fetching.insert(url.clone());
                if first_time {
                    println!("worker {id}: fetching {url}");
                    let client = crawl.borrow().client.clone();
                    let fetch = client.fetch(url.as_str());
                    *state = Worker::Fetching(url);
                    return YieldFuture::new(fetch).into();
                }
                // Already seen: done with this item.
                let _ = queue.task_done();
            }
            (Worker::Fetching(url), Resume::Value(response)) => {
                pages += 1;
                // No borrow may be held past this block: a put can resume
                // another worker at once, and it borrows `crawl` too.
                let mut c = crawl.borrow_mut();
                let links = match response.downcast::<HTTPResponse>() {
                    Ok(response) => get_links(&response.text()),
                    Err(err) => return Step::Return(Err(err)),
                };
                c.fetched.insert(url);
                let base = c.base.clone();
                let new: VecDeque<String> = links
                    .iter()
                    .map(|link| absolute(&base, link))
                    .filter(|link| link.starts_with(&base))
                    .collect();
                drop(c);
                *state = Worker::Putting(new);
                return put_next(state, &queue);
            }
            (Worker::Fetching(url), Resume::Error(err)) => {
                // A 404 (an `HTTPError`), a refused connection, a timeout:
                // the page is dead, the worker goes on.
                println!("worker {id}: exception: {err} {url}");
                crawl.borrow_mut().dead.insert(url);
                let _ = queue.task_done();
            }
            (Worker::Putting(links), Resume::Value(_)) => {
                *state = Worker::Putting(links);
                return put_next(state, &queue);
            }
            (_, Resume::Error(err)) => return Step::Return(Err(err)),
            (_, _) => {
                return Step::Return(Err(Error::new(
                    ErrorKind::InvalidState,
                    "worker resumed out of order",
                )))
            }
        }
        YieldFuture::new(queue.get()).into()
    })
}

/// `await q.put(link)` for the next new link; when none is left, the item
/// is done (`q.task_done()`) and the worker gets the next one.
fn put_next(state: &mut Worker, queue: &Queue<Option<String>>) -> Step<usize> {
    if let Worker::Putting(links) = state {
        if let Some(link) = links.pop_front() {
            return YieldFuture::new(queue.put(Some(link))).into();
        }
    }
    let _ = queue.task_done();
    *state = Worker::Getting;
    YieldFuture::new(queue.get()).into()
}

/// Tornado's `main()`: seed the queue, start the workers, wait for the
/// queue to drain, then stop the workers.
enum Main {
    Joining,
    Stopping,
}

fn crawl_site(
    crawl: Rc<RefCell<Crawl>>,
    concurrency: usize,
) -> impl gen::Generator<Output = Vec<usize>> {
    let mut workers = Vec::new();
    gen::from_fn(Main::Joining, move |state: &mut Main, input: Resume| {
        let queue = crawl.borrow().queue.clone();
        match (&state, input) {
            (_, Resume::Error(err)) => Step::Return(Err(err)),
            (Main::Joining, Resume::Start) => {
                let base = crawl.borrow().base.clone();
                if let Err(err) = queue.put_nowait(Some(format!("{base}/page/0"))) {
                    return Step::Return(Err(Error::new(ErrorKind::QueueFull, format!("{err}"))));
                }
                // gen.multi([worker() for _ in range(concurrency)]), started
                // now, awaited at the end.
                workers = (0..concurrency)
                    .map(|id| gen::coroutine(worker(id, crawl.clone())))
                    .collect();
                YieldFuture::new(queue.join_timeout(Duration::from_secs(300))).into()
            }
            (Main::Joining, Resume::Value(_)) => {
                for _ in 0..concurrency {
                    let _ = queue.put_nowait(None);
                }
                *state = Main::Stopping;
                let points: Vec<Box<dyn YieldPoint>> = workers
                    .drain(..)
                    .map(|w| Box::new(YieldFuture::new(w)) as Box<dyn YieldPoint>)
                    .collect();
                Multi::new(points).into()
            }
            (Main::Stopping, Resume::Value(counts)) => Step::Return(
                counts
                    .downcast::<Vec<gen::Value>>()
                    .and_then(|v| v.into_iter().map(|c| c.downcast::<usize>()).collect()),
            ),
            (Main::Stopping, Resume::Start) => {
                Step::Return(Err(Error::new(ErrorKind::InvalidState, "started twice")))
            }
        }
    })
}

fn main() -> Result<(), Error> {
    env_logger::init();
    let concurrency: usize = match std::env::args().nth(1) {
        Some(arg) => arg.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidArgument,
                "usage: web_spider [CONCURRENCY]",
            )
        })?,
        None => 10,
    };
    let io_loop = IOLoop::new()?;
    io_loop.make_current();

    let app = Application::new().route("/page/{n}", || Page);
    let server = HTTPServer::new(app);
    server.listen_with(0, BindOptions::new().address("127.0.0.1"))?;
    let base = format!("http://{}", server.local_addrs()[0]);
    println!("crawling {base} with {concurrency} workers");

    let crawl = Rc::new(RefCell::new(Crawl {
        base,
        queue: Queue::new(0),
        client: AsyncHTTPClient::new(),
        fetching: BTreeSet::new(),
        fetched: BTreeSet::new(),
        dead: BTreeSet::new(),
    }));
    let started = Instant::now();
    let c = crawl.clone();
    let per_worker = io_loop.run_sync(
        move || gen::coroutine(crawl_site(c, concurrency)),
        Some(Duration::from_secs(120)),
    )?;
    let took = started.elapsed();
    server.stop();

    let c = crawl.borrow();
    println!(
        "Done in {:.2} s, fetched {} URLs; unable to fetch {} URLs; pages per worker: {per_worker:?}",
        took.as_secs_f64(),
        c.fetched.len(),
        c.dead.len()
    );
    // Tornado's check, and what the site says the answer must be.
    let both: BTreeSet<String> = c.fetched.union(&c.dead).cloned().collect();
    assert_eq!(c.fetching, both, "fetching == fetched | dead");
    assert_eq!(c.fetched.len(), PAGES, "every page fetched once");
    let broken = (0..PAGES).filter(|n| n % 7 == 3).count();
    assert_eq!(c.dead.len(), broken, "the broken links are the dead ones");
    assert_eq!(
        per_worker.iter().sum::<usize>(),
        PAGES,
        "pages counted by the workers"
    );
    let serial = PAGE_DELAY * PAGES as u32;
    println!(
        "one worker would wait at least {:.2} s for the pages alone",
        serial.as_secs_f64()
    );
    if concurrency >= 5 {
        assert!(took < serial / 2, "the workers did not overlap: {took:?}");
    }
    Ok(())
}
