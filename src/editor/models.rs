//! The model list for the picker, found off the GUI thread: discovery reads every model's
//! header and builds its tokenizer, which takes seconds with a full Hugging Face cache and
//! would freeze the window meanwhile.

use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::thread;

use crate::llm::discovery::{self, FoundModel};

#[derive(Default)]
pub struct ModelScan {
    found: Vec<FoundModel>,
    pending: Option<Receiver<Vec<FoundModel>>>,
}

impl ModelScan {
    /// Looks for models again; the old list stays until the new one is ready.
    pub fn start(&mut self) {
        let (sender, receiver) = mpsc::channel();
        let spawned = thread::Builder::new()
            .name("latent-choir model discovery".to_owned())
            .spawn(move || {
                // A model that breaks discovery leaves the list as it was.
                if let Ok(found) = panic::catch_unwind(AssertUnwindSafe(discovery::discover)) {
                    let _ = sender.send(found);
                }
            });
        self.pending = spawned.is_ok().then_some(receiver);
    }

    /// Takes the new list if it has arrived (GUI thread, every frame: never waits).
    pub fn poll(&mut self) {
        let Some(receiver) = &self.pending else {
            return;
        };
        match receiver.try_recv() {
            Ok(found) => {
                self.found = found;
                self.pending = None;
            }
            Err(TryRecvError::Empty) => {}
            Err(TryRecvError::Disconnected) => self.pending = None,
        }
    }

    pub fn found(&self) -> &[FoundModel] {
        &self.found
    }

    pub fn scanning(&self) -> bool {
        self.pending.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn the_list_arrives_without_waiting_for_it() {
        let mut scan = ModelScan::default();
        scan.start();
        assert!(scan.scanning());
        let deadline = Instant::now() + Duration::from_secs(60);
        while scan.scanning() {
            assert!(Instant::now() < deadline, "discovery never finished");
            scan.poll();
            thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(scan.found().len(), discovery::discover().len());
    }
}
