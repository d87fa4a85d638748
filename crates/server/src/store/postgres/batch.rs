//! One statement for many concurrent callers, as a database commits many transactions with one
//! flush: callers queue their item and wait; one task at a time takes everything queued, runs
//! one statement for all of it, answers each caller, and starts again while more has queued.
//!
//! Why: on a PostgreSQL node the cost of a session check was its round trips, one statement
//! each. Batched, a node sends at most one statement per round trip, however many checks wait.
//!
//! What callers may rely on: the statement that answers an item is sent after the item was
//! queued. A validation of the read cache rests on that (`cache.rs`): its snapshot is taken
//! after the check that waits for it began.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

use crate::store::{StoreError, StoreResult};

type Run<I, O> =
    dyn Fn(Vec<I>) -> Pin<Box<dyn Future<Output = StoreResult<Vec<O>>> + Send>> + Send + Sync;

/// Queues items for one statement at a time; see the module doc.
pub(super) struct Batcher<I, O> {
    queue: Mutex<Queue<I, O>>,
    /// Runs one statement for the items, answering each in order.
    run: Box<Run<I, O>>,
}

struct Queue<I, O> {
    waiting: Vec<(I, oneshot::Sender<StoreResult<O>>)>,
    running: bool,
}

impl<I, O> std::fmt::Debug for Batcher<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher").finish_non_exhaustive()
    }
}

impl<I: Send + 'static, O: Send + 'static> Batcher<I, O> {
    /// `run` gets every item queued since the last statement and returns one answer per item.
    pub(super) fn new<F, Fut>(run: F) -> Arc<Self>
    where
        F: Fn(Vec<I>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = StoreResult<Vec<O>>> + Send + 'static,
    {
        Arc::new(Self {
            queue: Mutex::new(Queue {
                waiting: Vec::new(),
                running: false,
            }),
            run: Box::new(move |items| Box::pin(run(items))),
        })
    }

    /// Queues `item` and waits for the statement that includes it.
    pub(super) async fn submit(self: &Arc<Self>, item: I) -> StoreResult<O> {
        let (answer, answered) = oneshot::channel();
        let start = {
            let mut queue = self.lock();
            queue.waiting.push((item, answer));
            !std::mem::replace(&mut queue.running, true)
        };
        if start {
            tokio::spawn(Arc::clone(self).drain());
        }
        answered.await.unwrap_or_else(|_| {
            Err(StoreError::Unavailable(
                "a batched statement was abandoned".into(),
            ))
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue<I, O>> {
        // Every critical section leaves the queue consistent.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn drain(self: Arc<Self>) {
        // A panic in `run` ends this task: then the next caller starts another, and those
        // queued meanwhile, who would wait for nobody, are answered with an error.
        struct Unwinding<'a, I, O>(Option<&'a Batcher<I, O>>);
        impl<I, O> Drop for Unwinding<'_, I, O> {
            fn drop(&mut self) {
                if let Some(batcher) = self.0 {
                    let mut queue = batcher.queue.lock().unwrap_or_else(PoisonError::into_inner);
                    queue.running = false;
                    queue.waiting.clear();
                }
            }
        }
        let mut unwinding = Unwinding(Some(&*self));
        loop {
            let batch = {
                let mut queue = self.lock();
                if queue.waiting.is_empty() {
                    queue.running = false;
                    unwinding.0 = None;
                    return;
                }
                std::mem::take(&mut queue.waiting)
            };
            let (items, answers): (Vec<I>, Vec<_>) = batch.into_iter().unzip();
            let expected = items.len();
            match (self.run)(items).await {
                Ok(outs) if outs.len() == expected => {
                    for (answer, out) in answers.into_iter().zip(outs) {
                        let _ = answer.send(Ok(out));
                    }
                }
                Ok(_) => {
                    for answer in answers {
                        let _ = answer.send(Err(StoreError::Backend(
                            "a batched statement answered the wrong number of items".into(),
                        )));
                    }
                }
                Err(e) => {
                    for answer in answers {
                        let _ = answer.send(Err(e.clone()));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn concurrent_items_share_statements_and_each_gets_its_answer() {
        let statements = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&statements);
        let batcher = Batcher::new(move |items: Vec<u32>| {
            counted.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                Ok(items.into_iter().map(|i| i * 2).collect())
            }
        });
        let calls: Vec<_> = (0..100)
            .map(|i| {
                let batcher = Arc::clone(&batcher);
                tokio::spawn(async move { batcher.submit(i).await.unwrap() })
            })
            .collect();
        for (i, call) in calls.into_iter().enumerate() {
            assert_eq!(call.await.unwrap(), 2 * i as u32);
        }
        let n = statements.load(Ordering::SeqCst);
        assert!((1..100).contains(&n), "{n} statements for 100 items");
    }

    #[tokio::test]
    async fn a_failed_statement_fails_its_items_and_the_next_one_runs() {
        let batcher = Batcher::new(|items: Vec<bool>| async move {
            if items.contains(&true) {
                Err(StoreError::Unavailable("down".into()))
            } else {
                Ok(vec![(); items.len()])
            }
        });
        assert!(matches!(
            batcher.submit(true).await,
            Err(StoreError::Unavailable(_))
        ));
        batcher.submit(false).await.unwrap();
    }

    #[tokio::test]
    async fn a_panicking_statement_fails_its_items_and_the_next_one_runs() {
        let batcher = Batcher::new(|items: Vec<bool>| async move {
            assert!(!items.contains(&true), "boom");
            Ok(vec![(); items.len()])
        });
        assert!(batcher.submit(true).await.is_err());
        batcher.submit(false).await.unwrap();
    }
}
