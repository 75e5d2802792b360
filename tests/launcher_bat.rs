//! `run_server.bat` as a technician edits and runs it, under Wine's `cmd`
//! (Debian's wine), against a stand-in `dashcam-server.exe` built here by
//! MinGW (`tests/fixtures/standin.c`) that writes down the arguments and
//! `DASHCAM_*` variables it receives. The real server cannot be built for
//! Windows here; what the launcher hands it can be checked.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// `Z:\...`: how Wine's programs see a Unix path.
fn win(p: &Path) -> String {
    format!("Z:{}", p.display()).replace('/', "\\")
}

fn standin() -> PathBuf {
    let exe = Path::new(env!("CARGO_TARGET_TMPDIR")).join("standin.exe");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/standin.c");
    let ok = Command::new("x86_64-w64-mingw32-gcc")
        .args(["-O1", "-o"])
        .arg(&exe)
        .arg(&src)
        .status()
        .unwrap()
        .success();
    assert!(ok, "building the stand-in");
    exe
}

/// One Wine test at a time: they share the prefix and the stand-in.
static WINE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    WINE.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn wineprefix() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("wineprefix")
}

/// Makes the Wine prefix and waits until Wine has finished with it.
///
/// On a first run `wine cmd` creates the prefix itself, but it does not wait
/// for all of it: on a slow machine (CI) the loader went on before
/// `system32\cmd.exe` was in place and Wine's `start` answered
/// "ShellExecuteEx failed: Internal error". So the prefix is made by
/// `wineboot --init` first, `wineserver -w` waits for every Wine process of
/// it to end, and `cmd.exe` must then be there.
fn prepare_wine() {
    let prefix = wineprefix();
    let cmd_exe = prefix.join("drive_c/windows/system32/cmd.exe");
    let mut log = String::new();
    for _ in 0..3 {
        if cmd_exe.exists() {
            return;
        }
        for (prog, args) in [
            ("wine", &["wineboot", "--init"][..]),
            ("wineserver", &["-w"]),
        ] {
            let o = Command::new(prog)
                .args(args)
                .env("WINEPREFIX", &prefix)
                .env("WINEDEBUG", "-all")
                .stdin(Stdio::null())
                .output()
                .unwrap();
            log.push_str(&format!(
                "{prog} {args:?}: {}\n{}{}",
                o.status,
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ));
        }
    }
    assert!(cmd_exe.exists(), "Wine could not make its prefix:\n{log}");
}

/// Runs `cmd /c LINE` in `dir` under Wine; returns what the console showed.
///
/// When Wine itself could not start `cmd.exe` (its `start` says
/// "ShellExecuteEx failed", before any line of the launcher ran), it is
/// tried again after `wineserver -w`, at most three times in all: that is
/// Wine on a busy machine, not the launcher.
fn cmd(dir: &Path, line: &str, envs: &[(&str, String)]) -> (bool, String) {
    let mut result = cmd_once(dir, line, envs);
    for _ in 0..2 {
        if !result.1.contains("ShellExecuteEx failed") {
            break;
        }
        eprintln!("Wine could not start cmd.exe, trying again: {}", result.1);
        let _ = Command::new("wineserver")
            .arg("-w")
            .env("WINEPREFIX", wineprefix())
            .status();
        result = cmd_once(dir, line, envs);
    }
    result
}

fn cmd_once(dir: &Path, line: &str, envs: &[(&str, String)]) -> (bool, String) {
    let mut c = Command::new("wine");
    c.args(["cmd", "/c", line])
        .current_dir(dir)
        .env("WINEPREFIX", wineprefix())
        .env("WINEDEBUG", "-all")
        .env_remove("DASHCAM_BIN")
        .env_remove("WINEPATH")
        .env_remove("STANDIN_EXIT")
        .env_remove("STANDIN_STDERR")
        .env_remove("DASHCAM_PORT")
        .env_remove("DASHCAM_OUTPUT_DIR")
        .env_remove("DASHCAM_METADATA")
        .env_remove("DASHCAM_CONVERT")
        .env_remove("DASHCAM_MODE")
        .env_remove("DASHCAM_LOG_FILE")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    for (k, v) in envs {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    let console = String::from_utf8_lossy(&o.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&o.stderr);
    if !stderr.trim().is_empty() {
        // Wine's own complaints, shown with the console when an assertion fails.
        eprintln!("wine's stderr for {line:?}:\n{stderr}");
    }
    (o.status.success(), console)
}

/// Each run the stand-in saw: its arguments and variables.
fn runs(out: &Path) -> Vec<(Vec<String>, Vec<String>)> {
    // Written in text mode on "Windows": CRLF.
    let text = std::fs::read_to_string(out)
        .unwrap_or_default()
        .replace("\r\n", "\n");
    let mut all = Vec::new();
    for block in text.split("RUN\n").skip(1) {
        let (mut args, mut env) = (Vec::new(), Vec::new());
        for l in block.lines() {
            let l = l.trim_end_matches('\r');
            if let Some(a) = l.strip_prefix("ARG ") {
                args.push(a.to_string());
            } else if let Some(e) = l.strip_prefix("ENV ") {
                env.push(e.to_string());
            }
        }
        env.sort();
        all.push((args, env));
    }
    all
}

#[test]
#[cfg_attr(
    not(have_wine),
    ignore = "needs wine and x86_64-w64-mingw32-gcc on PATH (apt install wine gcc-mingw-w64-x86-64)"
)]
fn run_server_bat_takes_a_technicians_edits_under_wine_cmd() {
    let original =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("run_server.bat")).unwrap();
    // Windows line endings, every line.
    let text = String::from_utf8(original).unwrap();
    let body = text.strip_suffix('\n').unwrap_or(&text);
    assert!(
        body.split('\n').all(|l| l.ends_with('\r')),
        "run_server.bat must stay CRLF"
    );
    let _one = one_at_a_time();
    let exe = standin();
    prepare_wine();
    let tmp = tempfile::tempdir().unwrap();
    // A folder with a space and parentheses, as Windows users have.
    let dir = tmp.path().join("tech (van) files");
    std::fs::create_dir_all(&dir).unwrap();
    // Edited in Notepad: trailing spaces, `true`/`yes`, a folder with spaces and `)`.
    let edited = text
        .replace("set \"METADATA=0\"", "set \"METADATA=true  \"")
        .replace(
            "set \"OUTPUT_DIR=downloads\"",
            "set \"OUTPUT_DIR=camera (van) downloads \"",
        )
        .replace("set \"CONVERT=0\"", "set \"CONVERT=Yes\"")
        .replace("set \"PORT=5000\"", "set \"PORT=6001 \"");
    assert_ne!(edited, text);
    std::fs::write(dir.join("run_server.bat"), edited).unwrap();
    let out = tmp.path().join("seen.txt");
    let envs = [("DASHCAM_BIN", win(&exe)), ("STANDIN_OUT", win(&out))];
    // Two runs in one console, then what is left in it.
    let (ok, console) = cmd(
        &dir,
        "run_server.bat --allow-imei 350612071913857 & run_server.bat & set DASHCAM_P",
        &envs,
    );
    let seen = runs(&out);
    assert_eq!(seen.len(), 2, "{console}");
    let want = vec![
        "DASHCAM_CONVERT=mp4".to_string(),
        "DASHCAM_LOG_FILE=logs\\dashcam-server.log".into(),
        "DASHCAM_METADATA=true".into(),
        "DASHCAM_MODE=auto".into(),
        "DASHCAM_OUTPUT_DIR=camera (van) downloads".into(),
        "DASHCAM_PORT=6001".into(),
        "RUST_LOG=info".into(),
    ];
    assert_eq!(seen[0].0, ["serve", "--allow-imei", "350612071913857"]);
    assert_eq!(seen[0].1, want, "{console}");
    assert_eq!(seen[1].0, ["serve"]);
    assert_eq!(
        seen[1].1, want,
        "the second run in the same console is the same"
    );
    assert!(
        !console.contains("DASHCAM_PORT="),
        "nothing leaks into the console (setlocal): {console}"
    );
    assert!(console.contains("dashcam-server stopped."), "{console}");
    let _ = ok;

    // A variable set before wins over the file; a failing server says so and exits 1.
    std::fs::remove_file(&out).unwrap();
    let mut envs2 = envs.to_vec();
    envs2.push(("DASHCAM_PORT", "7002".into()));
    envs2.push(("STANDIN_EXIT", "1".into()));
    let (ok, console) = cmd(&dir, "run_server.bat", &envs2);
    let seen = runs(&out);
    assert!(
        seen[0].1.contains(&"DASHCAM_PORT=7002".to_string()),
        "{:?}",
        seen[0].1
    );
    assert!(console.contains("stopped with an error"), "{console}");
    assert!(!ok, "exit code 1 when the server fails");
}

/// Without `DASHCAM_BIN`, as a technician double-clicks it: cargo builds
/// (only what changed) and the built .exe runs; a failed build shows cargo's
/// words and names the Microsoft C++ build tools when cargo says the linker
/// is missing (and only then); without cargo the .exe already built runs,
/// with a note; with neither, it says to install Rust. A stand-in plays
/// cargo.exe (on the PATH through WINEPATH) and the server.
#[test]
#[cfg_attr(
    not(have_wine),
    ignore = "needs wine and x86_64-w64-mingw32-gcc on PATH (apt install wine gcc-mingw-w64-x86-64)"
)]
fn run_server_bat_builds_with_cargo_and_names_what_is_missing() {
    let _one = one_at_a_time();
    let exe = standin();
    prepare_wine();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("dashcam (server)");
    let tools = tmp.path().join("cargo bin");
    std::fs::create_dir_all(dir.join("target/release")).unwrap();
    std::fs::create_dir_all(&tools).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("run_server.bat"),
        dir.join("run_server.bat"),
    )
    .unwrap();
    let built = dir.join("target/release/dashcam-server.exe");
    std::fs::copy(&exe, &built).unwrap();
    std::fs::copy(&exe, tools.join("cargo.exe")).unwrap();
    let out = tmp.path().join("seen.txt");
    let with_cargo = |extra: &[(&str, &str)]| {
        let _ = std::fs::remove_file(&out);
        let mut envs = vec![("WINEPATH", win(&tools)), ("STANDIN_OUT", win(&out))];
        envs.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        let (ok, console) = cmd(&dir, "run_server.bat", &envs);
        (ok, console, runs(&out))
    };

    // cargo builds, then the built server runs.
    let (ok, console, seen) = with_cargo(&[]);
    assert!(ok, "{console}");
    assert!(console.contains("Building dashcam-server"), "{console}");
    assert_eq!(seen.len(), 2, "{console}");
    assert_eq!(seen[0].0, ["build", "--release", "--quiet"]);
    assert_eq!(seen[1].0, ["serve"]);

    // The linker is missing: cargo's words, then what to install; no server.
    let (ok, console, seen) = with_cargo(&[
        ("STANDIN_EXIT", "101"),
        ("STANDIN_STDERR", "error: linker `link.exe` not found"),
    ]);
    assert!(!ok);
    assert!(console.contains("linker `link.exe` not found"), "{console}");
    assert!(
        console.contains("Microsoft C++ build tools")
            && console.contains("https://visualstudio.microsoft.com/visual-cpp-build-tools/"),
        "{console}"
    );
    assert_eq!(seen.len(), 1, "the server is not run after a failed build");

    // Another build error: shown, without blaming the build tools.
    let (ok, console, _) = with_cargo(&[
        ("STANDIN_EXIT", "101"),
        ("STANDIN_STDERR", "error[E0308]: mismatched types"),
    ]);
    assert!(!ok);
    assert!(console.contains("mismatched types"), "{console}");
    assert!(
        console.contains("The build failed: see the lines above."),
        "{console}"
    );
    assert!(!console.contains("Microsoft C++"), "{console}");

    // No cargo: the .exe already built runs, with a note.
    let _ = std::fs::remove_file(&out);
    let (ok, console) = cmd(&dir, "run_server.bat", &[("STANDIN_OUT", win(&out))]);
    assert!(ok, "{console}");
    assert!(console.contains("Note: cargo not found"), "{console}");
    assert_eq!(runs(&out).len(), 1);
    assert_eq!(runs(&out)[0].0, ["serve"]);

    // Neither cargo nor a built .exe: install Rust.
    std::fs::remove_file(&built).unwrap();
    let (ok, console) = cmd(&dir, "run_server.bat", &[]);
    assert!(!ok);
    assert!(
        console.contains("install Rust from https://rustup.rs"),
        "{console}"
    );
}
