//! Crashes and their inputs. A panic anywhere while an input is handled is caught
//! (`catch_unwind`) and counted as a crash; the panic hook records its message and location
//! instead of printing it. An abort cannot be caught (an allocation failure ends the process),
//! so a signal handler writes the input being dispatched to `abort-input.bin` in the crash
//! directory before the process dies of the signal. Saved inputs are raw bytes, ready to become
//! regression files under `tests/fuzz-regressions/`.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use anyhow::Context;

/// Panic messages recorded by the hook since they were last taken.
static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// The input being dispatched, for the abort handler.
static CURRENT_INPUT: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static CURRENT_INPUT_BYTES: AtomicUsize = AtomicUsize::new(0);
static ABORT_INPUT_PATH: OnceLock<CString> = OnceLock::new();

/// File name of the input saved by the abort handler.
pub const ABORT_INPUT_FILE: &str = "abort-input.bin";

/// While alive, panics are recorded instead of printed; dropping it restores the previous hook.
pub struct PanicCapture {
    _private: (),
}

type PanicHook = Box<dyn Fn(&std::panic::PanicHookInfo<'_>) + Sync + Send + 'static>;
static PREVIOUS_HOOK: Mutex<Option<PanicHook>> = Mutex::new(None);

impl PanicCapture {
    pub fn install() -> Self {
        let previous = std::panic::take_hook();
        if let Ok(mut slot) = PREVIOUS_HOOK.lock() {
            *slot = Some(previous);
        }
        std::panic::set_hook(Box::new(|info| {
            let location = info
                .location()
                .map_or_else(String::new, |l| format!(" at {}:{}", l.file(), l.line()));
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".to_string());
            if let Ok(mut panics) = PANICS.lock()
                && panics.len() < 64
            {
                panics.push(format!("{message}{location}"));
            }
        }));
        PanicCapture { _private: () }
    }
}

impl Drop for PanicCapture {
    fn drop(&mut self) {
        let previous = PREVIOUS_HOOK.lock().ok().and_then(|mut slot| slot.take());
        match previous {
            Some(previous) => std::panic::set_hook(previous),
            None => drop(std::panic::take_hook()),
        }
    }
}

/// The panic messages recorded since the last call.
pub fn take_panic_messages() -> Vec<String> {
    PANICS
        .lock()
        .map(|mut panics| std::mem::take(&mut *panics))
        .unwrap_or_default()
}

/// Installs the fatal-signal handler that saves the current input into `crash_dir`. Once per
/// process; later calls keep the first directory.
pub fn install_abort_handler(crash_dir: &Path) -> anyhow::Result<()> {
    let path = CString::new(
        crash_dir
            .join(ABORT_INPUT_FILE)
            .as_os_str()
            .as_encoded_bytes(),
    )
    .context("the crash directory's path contains a NUL byte")?;
    if ABORT_INPUT_PATH.set(path).is_err() {
        return Ok(());
    }
    for signal in [
        libc::SIGABRT,
        libc::SIGSEGV,
        libc::SIGBUS,
        libc::SIGILL,
        libc::SIGFPE,
    ] {
        // SAFETY: a zeroed sigaction is valid; the handler only calls async-signal-safe
        // functions (open, write, close, raise) on data that stays valid while it is current.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = save_current_input as *const () as usize;
            action.sa_flags = libc::SA_ONSTACK | libc::SA_RESETHAND;
            libc::sigemptyset(&mut action.sa_mask);
            if libc::sigaction(signal, &action, std::ptr::null_mut()) != 0 {
                anyhow::bail!(
                    "cannot install the handler of signal {signal}: {}",
                    std::io::Error::last_os_error()
                );
            }
        }
    }
    Ok(())
}

extern "C" fn save_current_input(signal: libc::c_int) {
    let input = CURRENT_INPUT.load(Ordering::SeqCst);
    let length = CURRENT_INPUT_BYTES.load(Ordering::SeqCst);
    const NOTE: &[u8] = b"kchaos bench fuzz: fatal signal; the input being handled is saved\n";
    // SAFETY: async-signal-safe calls only; `input` points to `length` live bytes while set
    // (see `CurrentInput`).
    unsafe {
        if let Some(path) = ABORT_INPUT_PATH.get() {
            let fd = libc::open(
                path.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
                0o644,
            );
            if fd >= 0 {
                if !input.is_null() {
                    libc::write(fd, input as *const libc::c_void, length);
                }
                libc::close(fd);
            }
        }
        libc::write(2, NOTE.as_ptr() as *const libc::c_void, NOTE.len());
        // SA_RESETHAND restored the default action: die of the same signal.
        libc::raise(signal);
    }
}

/// Marks `input` as the one being handled for as long as the guard lives.
pub struct CurrentInput<'a> {
    _input: &'a [u8],
}

impl<'a> CurrentInput<'a> {
    pub fn set(input: &'a [u8]) -> Self {
        CURRENT_INPUT_BYTES.store(0, Ordering::SeqCst);
        CURRENT_INPUT.store(input.as_ptr() as *mut u8, Ordering::SeqCst);
        CURRENT_INPUT_BYTES.store(input.len(), Ordering::SeqCst);
        CurrentInput { _input: input }
    }
}

impl Drop for CurrentInput<'_> {
    fn drop(&mut self) {
        CURRENT_INPUT_BYTES.store(0, Ordering::SeqCst);
        CURRENT_INPUT.store(std::ptr::null_mut(), Ordering::SeqCst);
    }
}

/// One crash: which input and why.
#[derive(Debug, Clone)]
pub struct Crash {
    pub index: u64,
    pub kind: &'static str,
    pub message: String,
    pub saved_to: PathBuf,
}

/// Writes a crashing input to `<crash_dir>/crash-<kind>-<seed>-<index>.bin` (and the panic
/// message beside it, `.txt`).
pub fn save(
    crash_dir: &Path,
    seed: u64,
    index: u64,
    kind: &'static str,
    input: &[u8],
    message: &str,
) -> anyhow::Result<Crash> {
    std::fs::create_dir_all(crash_dir)
        .with_context(|| format!("cannot create {}", crash_dir.display()))?;
    let path = crash_dir.join(format!("crash-{kind}-{seed}-{index}.bin"));
    std::fs::write(&path, input).with_context(|| format!("cannot write {}", path.display()))?;
    std::fs::write(path.with_extension("txt"), format!("{message}\n"))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(Crash {
        index,
        kind,
        message: message.to_string(),
        saved_to: path,
    })
}
