//! What this crate's unit tests share: a fake clock and a scripted HTTP
//! server on loopback. Compiled for tests only (`lib.rs`).

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

use crate::poll::Clock;

/// A clock that moves only when someone sleeps or a test advances it, and
/// records every sleep.
pub(crate) struct FakeClock {
    origin: Instant,
    now: Cell<Instant>,
    sleeps: RefCell<Vec<Duration>>,
}

impl FakeClock {
    pub(crate) fn new() -> Self {
        let origin = Instant::now();
        FakeClock {
            origin,
            now: Cell::new(origin),
            sleeps: RefCell::new(Vec::new()),
        }
    }

    pub(crate) fn advance(&self, duration: Duration) {
        self.now.set(self.now.get() + duration);
    }

    pub(crate) fn since_origin(&self) -> Duration {
        self.now.get() - self.origin
    }

    pub(crate) fn sleeps(&self) -> Vec<Duration> {
        self.sleeps.borrow().clone()
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Instant {
        self.now.get()
    }

    fn sleep(&self, duration: Duration) {
        self.sleeps.borrow_mut().push(duration);
        self.advance(duration);
    }
}

/// A server on loopback that answers each request with the next of
/// `answers` (the last one again when they run out); its URL (`/v3`) and
/// the number of requests it served.
pub(crate) fn scripted_server(
    answers: &'static [&'static str],
) -> (String, std::sync::Arc<std::sync::Mutex<usize>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v3", listener.local_addr().unwrap());
    let served = std::sync::Arc::new(std::sync::Mutex::new(0));
    let count = std::sync::Arc::clone(&served);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut buffer = [0u8; 4096];
            let _ = std::io::Read::read(&mut stream, &mut buffer);
            let mut count = count.lock().unwrap();
            let answer = answers[(*count).min(answers.len() - 1)];
            *count += 1;
            let _ = std::io::Write::write_all(&mut stream, answer.as_bytes());
        }
    });
    (url, served)
}

/// A 503 that closes the connection.
pub(crate) const UNAVAILABLE: &str =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
