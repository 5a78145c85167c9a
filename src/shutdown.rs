//! Shutdown, in two steps: the first Ctrl-C asks every stage to stop taking
//! new work and drain what is in flight; a second one forces the exit.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

#[derive(Clone, Default)]
pub struct Shutdown(Arc<AtomicU8>);

impl Shutdown {
    /// Asks for a drain; asking again does not force anything (only a
    /// second interrupt does).
    pub fn request(&self) {
        let _ = self.0.fetch_max(1, Ordering::SeqCst);
    }

    fn interrupt(&self) {
        let _ = self.0.fetch_add(1, Ordering::SeqCst);
    }

    pub fn is_requested(&self) -> bool {
        self.0.load(Ordering::SeqCst) >= 1
    }

    pub fn is_forced(&self) -> bool {
        self.0.load(Ordering::SeqCst) >= 2
    }

    /// Installs the Ctrl-C / SIGTERM handler on the given runtime.
    pub fn listen(&self, rt: &tokio::runtime::Handle) {
        let me = self.clone();
        rt.spawn(async move {
            loop {
                let term = async {
                    #[cfg(unix)]
                    {
                        use tokio::signal::unix::{signal, SignalKind};
                        match signal(SignalKind::terminate()) {
                            Ok(mut s) => {
                                s.recv().await;
                            }
                            Err(_) => std::future::pending::<()>().await,
                        }
                    }
                    #[cfg(not(unix))]
                    std::future::pending::<()>().await
                };
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term => {}
                }
                me.interrupt();
                if me.is_forced() {
                    tracing::warn!("second interrupt: exiting now");
                    std::process::exit(130);
                }
                tracing::info!("interrupt: draining in-flight ballots (Ctrl-C again to force)");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::Shutdown;

    #[test]
    fn asking_twice_drains_and_only_a_second_interrupt_forces() {
        let s = Shutdown::default();
        s.request();
        s.request();
        assert!(s.is_requested());
        assert!(!s.is_forced(), "the pipeline asks on every tick");
        s.interrupt();
        assert!(s.is_forced());
    }
}
