//! Parse tests of the flags: the vendor's forms, each group's values.

use std::collections::HashSet;

use super::*;

fn serve_args(extra: &[&str]) -> ServeArgs {
    let mut argv = vec!["dashcam-server", "serve"];
    argv.extend_from_slice(extra);
    match Cli::try_parse_from(argv).unwrap().command {
        Some(Command::Serve(a)) => a,
        other => panic!("{other:?}"),
    }
}

/// The vendor's launch lines run unchanged (its run_server.bat:
/// `-p`, `-m 0|1`, `-r/--cam 0..3`, `--tls -c FILE -k FILE`).
#[test]
fn the_vendors_command_line_is_understood() {
    let a = serve_args(&[
        "-p", "6000", "-m", "1", "-r", "3", "--tls", "-c", "c.pem", "-k", "k.pem",
    ]);
    assert_eq!(
        (a.net.port, a.session.metadata, a.session.mode),
        (6000, true, ModeArg::Dsm)
    );
    assert_eq!(
        a.tls.tls_cert.as_deref(),
        Some(std::path::Path::new("c.pem"))
    );
    assert_eq!(
        a.tls.tls_key.as_deref(),
        Some(std::path::Path::new("k.pem"))
    );
    let a = serve_args(&[
        "--port", "6001", "--cam", "1", "--meta", "0", "--cert", "c", "--key", "k",
    ]);
    assert_eq!(
        (a.net.port, a.session.metadata, a.session.mode),
        (6001, false, ModeArg::Adas)
    );
    for (v, mode) in [("0", ModeArg::Auto), ("2", ModeArg::Dualcam)] {
        assert_eq!(serve_args(&["--cam", v]).session.mode, mode);
    }
    // Without a subcommand, as the vendor's `node index.js -p 6000 -m 1`.
    let cli = Cli::try_parse_from(["dashcam-server", "-p", "6002", "-m", "1"]).unwrap();
    assert!(cli.command.is_none());
    assert_eq!(
        (cli.serve.net.port, cli.serve.session.metadata),
        (6002, true)
    );
    // --tls without a certificate says what is missing.
    assert!(Cli::try_parse_from(["dashcam-server", "serve", "--tls"]).is_err());
}

#[test]
fn boolean_flags_take_every_spelling() {
    assert!(serve_args(&["--metadata"]).session.metadata);
    assert!(!serve_args(&[]).session.metadata);
    for (v, want) in [
        ("true", true),
        ("1", true),
        ("yes", true),
        ("on", true),
        ("false", false),
        ("0", false),
        ("no", false),
        ("off", false),
    ] {
        assert_eq!(serve_args(&["--metadata", v]).session.metadata, want, "{v}");
        assert_eq!(
            serve_args(&["--proxy-protocol", v]).tls.proxy_protocol,
            want,
            "{v}"
        );
    }
}

#[test]
fn allow_file_and_flags_make_one_list() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("allow.txt");
    std::fs::write(
        &file,
        "# fleet A\n350612071913857\n\n  350612071913858  # van 2\n",
    )
    .unwrap();
    let a = serve_args(&["--allow-imei", "1", "--allow-file", file.to_str().unwrap()]);
    let allow = a.to_config().unwrap().session.allow.unwrap();
    let want: HashSet<u64> = [1, 350612071913857, 350612071913858].into_iter().collect();
    assert_eq!(allow, want);
    assert!(serve_args(&[]).to_config().unwrap().session.allow.is_none());
}

#[test]
fn a_bad_allow_file_line_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("allow.txt");
    std::fs::write(&file, "350612071913857\nvan-2\n").unwrap();
    let err = serve_args(&["--allow-file", file.to_str().unwrap()])
        .to_config()
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("line 2: 'van-2' is not an IMEI"),
        "{err:#}"
    );
}

#[test]
fn files_list_and_limits() {
    let a = serve_args(&["--files", "videof,%photor", "--max-file-mb", "2"]);
    let c = a.to_config().unwrap();
    assert_eq!(
        c.session.files,
        Some(vec![FileKind::VideoFront, FileKind::PhotoRear])
    );
    assert_eq!(c.session.max_file_bytes, 2 << 20);
    assert_eq!(c.session.max_files, 1000);
    assert_eq!(c.session.sync_timeout, Duration::from_secs(3));
    // dashcam stays an alias of dualcam.
    assert_eq!(
        serve_args(&["--mode", "dashcam"]).session.mode,
        ModeArg::Dualcam
    );
    assert_eq!(serve_args(&["--mode", "dsm"]).session.mode, ModeArg::Dsm);
    assert!(Cli::try_parse_from(["dashcam-server", "serve", "--files", "video"]).is_err());
    // No subcommand is `serve`, with its flags.
    let top = Cli::try_parse_from(["dashcam-server", "--port", "6000"]).unwrap();
    assert!(top.command.is_none());
    assert_eq!(top.serve.net.port, 6000);
}

#[test]
fn zero_timeouts_and_limits_are_refused_by_name() {
    for (flag, what) in [
        ("--read-timeout", "--read-timeout must be more than 0"),
        (
            "--metadata-timeout",
            "--metadata-timeout must be more than 0",
        ),
        ("--sync-timeout", "--sync-timeout must be more than 0"),
        ("--init-timeout", "--init-timeout must be more than 0"),
        ("--frame-timeout", "--frame-timeout must be more than 0"),
        ("--partial-max-age", "--partial-max-age must be more than 0"),
        ("--max-file-mb", "--max-file-mb must be at least 1"),
        ("--max-partials-gb", "--max-partials-gb must be more than 0"),
        ("--max-files", "--max-files must be at least 1"),
        ("--max-per-ip", "--max-per-ip must be at least 1"),
        (
            "--max-connections",
            "--max-connections and --max-per-ip must be at least 1",
        ),
    ] {
        let err = serve_args(&[flag, "0"]).to_config().unwrap_err();
        assert!(format!("{err:#}").contains(what), "{flag}: {err:#}");
    }
    // 0 has a documented meaning here: no free-space reserve.
    assert_eq!(
        serve_args(&["--min-free-mb", "0"])
            .to_config()
            .unwrap()
            .storage
            .min_free_bytes,
        0
    );
}
