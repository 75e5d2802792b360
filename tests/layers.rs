//! The architecture, checked: the protocol crate depends on no storage, CLI,
//! socket or file-system crate, and no module of a crate imports a module
//! that imports it back.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `cargo tree` of one package's normal dependencies, one name per line.
fn tree(package: &str) -> BTreeSet<String> {
    let o = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "--locked",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .args(["--format", "{p}", "-p", package])
        .current_dir(root())
        .output()
        .expect("cargo tree");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

#[test]
fn the_protocol_crate_has_no_storage_cli_socket_or_file_system_dependency() {
    let deps = tree("dashcam-protocol");
    for banned in [
        "dashcam-storage",
        "dashcam-simulator",
        "dashcam-server",
        "clap",
        "socket2",
        "mio",
        "libc",
        "rustls",
        "tempfile",
        "sha2",
        "anyhow",
    ] {
        assert!(
            !deps.contains(banned),
            "dashcam-protocol depends on {banned}: {deps:?}"
        );
    }
    // Storage and the simulator stand on the protocol crate, never on the server.
    for p in ["dashcam-storage", "dashcam-simulator"] {
        let deps = tree(p);
        assert!(deps.contains("dashcam-protocol"), "{p}");
        assert!(
            !deps.contains("dashcam-server"),
            "{p} depends on the server"
        );
    }
    assert!(!tree("dashcam-storage").contains("dashcam-simulator"));
    assert!(!tree("dashcam-simulator").contains("dashcam-storage"));
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Top-level module -> the top-level modules it names with `crate::`.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        // Test code may reach anywhere; only what ships counts.
        let shipped = text.split("#[cfg(test)]").next().unwrap_or("");
        let entry = g.entry(module.clone()).or_default();
        for (i, _) in shipped.match_indices("crate::") {
            let name: String = shipped[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && name != module {
                entry.insert(name);
            }
        }
    }
    g
}

fn find_cycle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        g: &BTreeMap<String, BTreeSet<String>>,
        n: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == n) {
            let mut c = path[at..].to_vec();
            c.push(n.to_string());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for m in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(g, m, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    g.keys()
        .find_map(|n| visit(g, n, &mut Vec::new(), &mut done))
}

#[test]
fn no_module_imports_a_module_that_imports_it_back() {
    // The check itself sees a cycle when there is one.
    let mut g = BTreeMap::new();
    g.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    g.insert("b".to_string(), BTreeSet::from(["c".to_string()]));
    g.insert("c".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(find_cycle(&g).map(|c| c.len()), Some(4));
    for src in [
        "src",
        "crates/protocol/src",
        "crates/storage/src",
        "crates/simulator/src",
    ] {
        let g = module_graph(&root().join(src));
        assert!(g.len() > 2, "{src}: {g:?}");
        if let Some(cycle) = find_cycle(&g) {
            panic!("{src}: modules import each other: {}", cycle.join(" -> "));
        }
    }
}
