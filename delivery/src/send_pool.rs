//! Where requests are sent: a runtime on a thread of its own, at a lower CPU
//! priority (`webhooks.niceness`). Signing, HTTP and TLS are the
//! dispatcher's CPU work; on a saturated machine they yield to the chat
//! path, so deliveries lag and catch up after the burst (they are durable:
//! lagging loses nothing). The dispatcher's database work stays on the main
//! runtime at normal priority: a descheduled low-priority thread must never
//! hold SQLite's one connection (that priority inversion is why the whole
//! dispatcher does not run here).
use std::future::Future;

use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

pub struct SendPool {
    handle: Handle,
    /// Dropped with the pool: the thread's runtime stops.
    _stop: oneshot::Sender<()>,
}

impl SendPool {
    pub fn start(niceness: u8) -> std::io::Result<SendPool> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new().name("webhook-send".into()).spawn(move || {
            if let Err(error) = lower_priority(niceness) {
                tracing::warn!(?error, niceness, "could not lower the webhook senders' CPU priority");
            }
            runtime.block_on(async {
                let _ = stopped.await;
            });
        })?;
        Ok(SendPool { handle, _stop: stop })
    }

    /// Runs `request` on the pool's thread; its result comes back through `set`.
    pub fn spawn<T: Send + 'static>(&self, set: &mut JoinSet<T>, request: impl Future<Output = T> + Send + 'static) {
        set.spawn_on(request, &self.handle);
    }
}

/// Sets the calling thread's niceness (0 = normal, 19 = lowest priority).
fn lower_priority(niceness: u8) -> Result<(), thread_priority::Error> {
    use thread_priority::{ThreadPriority, ThreadPriorityValue};
    if niceness == 0 {
        return Ok(());
    }
    // thread-priority maps 0..=99 onto niceness 19..=-20 (higher is more urgent):
    // niceness = ⌊39 × (1 − p/99)⌋ − 20, so p = 99 × (1 − (niceness + 20) / 39), rounded down.
    let niceness = f32::from(niceness.min(19));
    let value = (99.0 * (1.0 - (niceness + 20.0) / 39.0)).floor().clamp(0.0, 99.0) as u8;
    let value = ThreadPriorityValue::try_from(value).map_err(|_| thread_priority::Error::Priority("out of range"))?;
    thread_priority::set_current_thread_priority(ThreadPriority::Crossplatform(value))
}

#[cfg(test)]
mod tests {
    /// The thread's niceness as the kernel reports it (field 19 of its stat).
    fn current_niceness() -> i32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        after_name.split_whitespace().nth(16).unwrap().parse().unwrap()
    }

    #[test]
    fn the_senders_thread_gets_the_niceness_asked_for() {
        for wanted in [10, 19] {
            let niceness = std::thread::spawn(move || {
                super::lower_priority(wanted).unwrap();
                current_niceness()
            })
            .join()
            .unwrap();
            assert_eq!(niceness, i32::from(wanted));
        }
    }

    #[tokio::test]
    async fn requests_run_on_the_pool_and_report_back() {
        let pool = super::SendPool::start(10).unwrap();
        let mut set = tokio::task::JoinSet::new();
        pool.spawn(&mut set, async { (std::thread::current().name().map(str::to_owned), current_niceness()) });
        let (thread, niceness) = set.join_next().await.unwrap().unwrap();
        assert_eq!(thread.as_deref(), Some("webhook-send"));
        assert_eq!(niceness, 10);
    }
}
