//! Windows console events. Ctrl+C and Ctrl+Break stop the server, as on
//! Unix. Closing the console window, logging off and shutting down stop it
//! too; for those, Windows ends the process as soon as the handler returns
//! (and 5 s after the event at the latest), so the handler waits, up to
//! 4.5 s, until [`stopped`] says the links are closed and the partials saved.

use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Duration;

use windows_sys::core::BOOL;
use windows_sys::Win32::System::Console::{SetConsoleCtrlHandler, CTRL_BREAK_EVENT, CTRL_C_EVENT};

struct Hook {
    stop: Box<dyn Fn() + Send + Sync>,
    done: Mutex<bool>,
    stopped: Condvar,
}

/// One console, one handler: the process-wide state the system calls into.
static HOOK: OnceLock<Hook> = OnceLock::new();

/// Run by Windows on a thread of its own for each console event.
#[allow(
    unsafe_code,
    reason = "a HANDLER_ROUTINE is an extern \"system\" callback the system calls"
)]
unsafe extern "system" fn on_event(event: u32) -> BOOL {
    let Some(h) = HOOK.get() else { return 0 };
    (h.stop)();
    if event != CTRL_C_EVENT && event != CTRL_BREAK_EVENT {
        let done = h.done.lock().unwrap_or_else(|e| e.into_inner());
        let _ = h
            .stopped
            .wait_timeout_while(done, Duration::from_millis(4500), |d| !*d);
    }
    1
}

/// Installs the handler; `stop` asks the server to stop (from any thread).
pub fn install(stop: impl Fn() + Send + Sync + 'static) -> std::io::Result<()> {
    let hook = Hook {
        stop: Box::new(stop),
        done: Mutex::new(false),
        stopped: Condvar::new(),
    };
    if HOOK.set(hook).is_err() {
        return Err(std::io::Error::other("the console handler is already set"));
    }
    // SAFETY: `on_event` has the signature a HANDLER_ROUTINE needs and only
    // touches `HOOK`, set above and never dropped (a static).
    #[allow(
        unsafe_code,
        reason = "SetConsoleCtrlHandler: no safe crate waits in a close event"
    )]
    let ok = unsafe { SetConsoleCtrlHandler(Some(on_event), 1) };
    if ok == 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The server has stopped: a waiting close handler may let Windows go on.
pub fn stopped() {
    if let Some(h) = HOOK.get() {
        *h.done.lock().unwrap_or_else(|e| e.into_inner()) = true;
        h.stopped.notify_all();
    }
}
