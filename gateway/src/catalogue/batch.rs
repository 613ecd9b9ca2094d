//! Group commit: concurrent SQLite writers share one transaction, and so one log sync.
//!
//! With `synchronous = FULL` SQLite syncs its write-ahead log on every commit, and one commit
//! per request capped small PUTs and DELETEs at the rate of that sync (~1500 a second here,
//! whatever the concurrency). Writers that arrive while a commit is under way queue their work;
//! whoever next gets the writer turn runs everything queued, each piece in its own savepoint (a
//! piece that fails rolls back alone and reports its own error), and commits once. Every writer
//! is answered only after the commit that made its change durable, or with that commit's error.
//!
//! The group runs in a task of its own, holding the writer turn until it has committed, so a
//! writer whose request is cancelled mid-commit strands neither the others queued with it nor
//! the order of writes. Work whose request was dropped before the group reached it is skipped.
//!
//! PostgreSQL groups concurrent commits into one log flush by itself: there each writer simply
//! runs its own transaction.

use futures::future::BoxFuture;
use sqlx::{Acquire, AnyConnection};

use super::{Backend, Catalogue, CatalogueError, Result};

/// The work of one writer: statements run on the shared transaction (in its own savepoint).
pub(crate) type Work<T> =
    Box<dyn for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Result<T>> + Send>;

/// Writers waiting for the next group commit.
#[derive(Default)]
pub(super) struct WriteQueue(std::sync::Mutex<Vec<Box<dyn Pending>>>);

impl WriteQueue {
    fn push(&self, job: Box<dyn Pending>) {
        self.0.lock().expect("poisoned").push(job);
    }

    fn take(&self) -> Vec<Box<dyn Pending>> {
        std::mem::take(&mut *self.0.lock().expect("poisoned"))
    }
}

impl std::fmt::Debug for WriteQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let waiting = self.0.lock().map_or(0, |q| q.len());
        f.debug_struct("WriteQueue")
            .field("waiting", &waiting)
            .finish()
    }
}

/// A queued writer, with its result type erased.
trait Pending: Send {
    /// Runs the work; false if it failed (its savepoint is then rolled back).
    fn run<'c>(&'c mut self, conn: &'c mut AnyConnection) -> BoxFuture<'c, bool>;
    /// Answers the writer once the group's commit is done (`Err`: the commit failed).
    fn finish(self: Box<Self>, commit: Result<(), String>);
}

struct Job<T> {
    work: Option<Work<T>>,
    output: Option<Result<T>>,
    reply: tokio::sync::oneshot::Sender<Result<T>>,
}

impl<T: Send + 'static> Pending for Job<T> {
    fn run<'c>(&'c mut self, conn: &'c mut AnyConnection) -> BoxFuture<'c, bool> {
        let work = self.work.take().expect("a job runs once");
        Box::pin(async move {
            if self.reply.is_closed() {
                // The request was dropped before its turn came: its write is abandoned, as a
                // transaction of its own would have been. Running it now could reorder it after
                // writes that were acknowledged since.
                self.output = Some(Err(CatalogueError::Group("the request was dropped".into())));
                return false;
            }
            let output = work(conn).await;
            let ok = output.is_ok();
            self.output = Some(output);
            ok
        })
    }

    fn finish(self: Box<Self>, commit: Result<(), String>) {
        let answer = match commit {
            Ok(()) => self
                .output
                .unwrap_or_else(|| Err(CatalogueError::Group("the write never ran".into()))),
            // The work itself may have failed first; its own error says more.
            Err(e) => match self.output {
                Some(Err(own)) => Err(own),
                _ => Err(CatalogueError::Group(e)),
            },
        };
        let _ = self.reply.send(answer); // the writer may have gone away
    }
}

impl Catalogue {
    /// Runs `work` in a write transaction, committed together with other writers' work on
    /// SQLite. For writes that many requests make at once (object commits and deletes).
    pub(crate) async fn write_grouped<T: Send + 'static>(&self, work: Work<T>) -> Result<T> {
        if self.backend == Backend::Postgres {
            let mut w = self.write().await?;
            let out = work(&mut w.tx).await?;
            w.tx.commit().await?;
            return Ok(out);
        }
        let (reply, mut answer) = tokio::sync::oneshot::channel();
        self.queue.push(Box::new(Job {
            work: Some(work),
            output: None,
            reply,
        }));
        loop {
            tokio::select! {
                biased;
                out = &mut answer => {
                    return out.unwrap_or_else(|_| {
                        Err(CatalogueError::Group("the grouped commit was abandoned".into()))
                    });
                }
                turn = self.write_turn.clone().lock_owned() => {
                    let jobs = self.queue.take();
                    if !jobs.is_empty() {
                        // The turn goes with the group: were this writer cancelled while
                        // waiting, the next writer must still not start before it commits.
                        let me = self.clone();
                        let group = tokio::spawn(async move {
                            me.commit_group(jobs).await;
                            drop(turn);
                        });
                        let _ = group.await;
                    }
                }
            }
        }
    }

    /// Waits until every write queued or running before this call has committed or failed. A
    /// group already running when its request is cancelled still commits; whoever cleans up
    /// after that request must not judge the catalogue before it has.
    pub(crate) async fn barrier(&self) -> Result<()> {
        self.write_grouped(Box::new(|_| Box::pin(async { Ok(()) })))
            .await
    }

    /// Runs `jobs` in one transaction and answers each; runs while the writer turn is held.
    async fn commit_group(&self, mut jobs: Vec<Box<dyn Pending>>) {
        let commit = self
            .run_group(&mut jobs)
            .await
            .map_err(|e| format!("{e}: {}", source_text(&e)));
        for job in jobs {
            job.finish(commit.clone());
        }
    }

    async fn run_group(&self, jobs: &mut [Box<dyn Pending>]) -> Result<()> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        for job in jobs.iter_mut() {
            let mut savepoint = (&mut tx).begin().await?;
            if job.run(&mut savepoint).await {
                savepoint.commit().await?;
            } else {
                savepoint.rollback().await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

fn source_text(e: &CatalogueError) -> String {
    std::error::Error::source(e).map_or_else(String::new, ToString::to_string)
}
