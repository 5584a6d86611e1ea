//! Ctrl-C (SIGINT) and SIGTERM during training: the first asks the trainer to stop
//! after the step under way and write a checkpoint; a second exits at once with the
//! same status (the last complete checkpoint stays: every save is atomic).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::flag;

pub struct StopSignals {
    requested: Arc<AtomicBool>,
    signal: Arc<AtomicUsize>,
}

impl StopSignals {
    pub fn install() -> Result<Self> {
        let requested = Arc::new(AtomicBool::new(false));
        let signal = Arc::new(AtomicUsize::new(0));
        for sig in [SIGINT, SIGTERM] {
            // Registered first, so it sees the flag as the previous signal left it:
            // only a second signal exits here.
            flag::register_conditional_shutdown(sig, 128 + sig, Arc::clone(&requested))
                .context("installing the Ctrl-C handler")?;
            flag::register_usize(sig, Arc::clone(&signal), sig as usize)
                .context("installing the Ctrl-C handler")?;
            flag::register(sig, Arc::clone(&requested)).context("installing the Ctrl-C handler")?;
        }
        Ok(StopSignals { requested, signal })
    }

    /// The flag the trainer checks between steps.
    pub fn flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.requested)
    }

    /// The shell's status for the signal received: 130 for SIGINT, 143 for SIGTERM.
    pub fn exit_code(&self) -> i32 {
        128 + self.signal.load(Ordering::SeqCst) as i32
    }

    pub fn name(&self) -> &'static str {
        if self.signal.load(Ordering::SeqCst) as i32 == SIGTERM {
            "SIGTERM"
        } else {
            "Ctrl-C"
        }
    }
}
