//! The readers: a few threads, each with its own read-only connection, that answer queries off the async runtime.
//!
//! In WAL mode readers never wait for the writer, nor the writer for them: each query sees the last commit made
//! before it started. Reads queue on a channel and the first free reader takes the next one.

use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use dashboard_store::StoreError;
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::codec::OpResult;

/// How many reads may wait for a free reader before callers wait to send.
const QUEUE: usize = 1024;

type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

/// The reader threads; dropping this lets them finish what is queued, then joins them.
pub(super) struct Readers {
    sender: Option<mpsc::Sender<ReadJob>>,
    threads: Vec<JoinHandle<()>>,
}

impl Readers {
    /// Starts one thread per connection.
    pub(super) fn start(connections: Vec<Connection>) -> Result<Self, StoreError> {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let receiver = Arc::new(Mutex::new(receiver));
        let mut readers = Self { sender: Some(sender), threads: Vec::with_capacity(connections.len()) };
        for (index, connection) in connections.into_iter().enumerate() {
            let receiver = Arc::clone(&receiver);
            let thread = std::thread::Builder::new()
                .name(format!("store-reader-{index}"))
                .spawn(move || read_loop(connection, &receiver))
                .map_err(|error| {
                    StoreError::unavailable("could not start the store's reader threads", error)
                })?;
            readers.threads.push(thread);
        }
        Ok(readers)
    }

    /// Runs `query` on the first free reader.
    pub(super) async fn run<T, F>(&self, query: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> OpResult<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: ReadJob = Box::new(move |connection| {
            let _ = reply.send(query(connection).map_err(|error| error.0));
        });
        let sender = self.sender.as_ref().ok_or_else(stopped)?;
        sender.send(job).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| StoreError::Unavailable {
            message: "a store reader failed in the middle of a query (a bug)".to_owned(),
            source: None,
        })?
    }
}

impl Drop for Readers {
    fn drop(&mut self) {
        drop(self.sender.take());
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                log::error!("a store reader thread panicked");
            }
        }
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable { message: "the store's readers have stopped".to_owned(), source: None }
}

fn read_loop(connection: Connection, receiver: &Mutex<mpsc::Receiver<ReadJob>>) {
    loop {
        // One idle reader waits on the channel while the others wait for the lock; a job is run after the lock is
        // released, so readers work in parallel.
        let job = match receiver.lock() {
            Ok(mut receiver) => receiver.blocking_recv(),
            Err(_) => None,
        };
        let Some(job) = job else {
            break;
        };
        // A panicking query is a bug: its caller hears of it (the reply is dropped), the reader goes on.
        let _ = panic::catch_unwind(AssertUnwindSafe(|| job(&connection)));
    }
    drop(connection);
}
