//! The command line explains itself and keeps quiet: every command and
//! argument has a help line (checked over the whole clap tree and in the
//! real binary's `--help`), `--config`/`--json` sit only where they mean
//! something, operator commands print no log line unless `-v`, and logs
//! that do not go to a terminal carry no colour codes.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use clap::CommandFactory;
use tilegate::cli::Cli;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_tilegate")
}

/// Every command of the tree under `cmd` (itself included), with its path
/// of names from the top (`["org", "create"]`), except clap's own `help`.
fn commands(cmd: &clap::Command, path: Vec<String>, out: &mut Vec<(Vec<String>, clap::Command)>) {
    out.push((path.clone(), cmd.clone()));
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let mut p = path.clone();
        p.push(sub.get_name().to_owned());
        commands(sub, p, out);
    }
}

/// The built tree (globals propagated, clap's help and version flags added).
fn tree() -> Vec<(Vec<String>, clap::Command)> {
    let mut root = Cli::command();
    root.build();
    let mut out = Vec::new();
    commands(&root, Vec::new(), &mut out);
    out
}

fn visible_args(cmd: &clap::Command) -> impl Iterator<Item = &clap::Arg> {
    cmd.get_arguments().filter(|a| !a.is_hide_set())
}

fn run(args: &[&str], dir: &Path, env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(bin());
    c.args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env_remove("TILEGATE_CONFIG");
    c.env_remove("TILEGATE_LOG_TEXT");
    for (k, v) in env {
        c.env(k, v);
    }
    c.stdin(Stdio::null()).output().expect("run tilegate")
}

/// A config on a fresh SQLite store in `dir`.
fn fresh_config(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("tilegate.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[server]
listen = "127.0.0.1:0"
[store]
url = "sqlite://{d}/tilegate.db"
kek_file = "{d}/kek"
[tokens]
issuer = "http://gateway.test"
audience = "tilegate"
[scopes]
"tiles:read" = "r"
[[upstreams]]
name = "tiles"
backends = ["http://127.0.0.1:9"]
[[routes]]
name = "tiles"
prefix = "/tiles/"
upstream = "tiles"
scopes = ["tiles:read"]
"#,
            d = dir.display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn clap_finds_the_command_tree_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn every_command_and_argument_has_a_help_line() {
    let mut missing = Vec::new();
    let tree = tree();
    assert!(tree.len() > 40, "the walk sees the whole tree: {} commands", tree.len());
    for (path, cmd) in &tree {
        let name = format!("tilegate {}", path.join(" "));
        if cmd.get_about().is_none_or(|a| a.to_string().trim().is_empty()) {
            missing.push(format!("{name}: no description"));
        }
        for a in visible_args(cmd) {
            if a.get_help().is_none_or(|h| h.to_string().trim().is_empty()) {
                missing.push(format!("{name}: {} has no help", a.get_id()));
            }
        }
    }
    assert!(missing.is_empty(), "without help:\n{}", missing.join("\n"));
}

/// The real binary's `--help` of every command lists each of its
/// subcommands and arguments, each on a line with text after its name.
#[test]
fn the_binary_prints_a_line_for_everything() {
    let dir = tempfile::tempdir().unwrap();
    for (path, cmd) in tree() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let out = run(&args, dir.path(), &[]);
        assert!(out.status.success(), "{args:?}: {out:?}");
        let help = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = help.lines().collect();
        // The line that lists `n`: an option's line starts with `-` and
        // names it among its first words; a positional's starts with
        // `<NAME>` or `[NAME]`; a subcommand's starts with its name.
        let find = |n: &str| {
            lines.iter().position(|l| {
                let t = l.trim_start();
                let first: Vec<&str> = t
                    .split([' ', ','])
                    .filter(|w| !w.is_empty())
                    .take(3)
                    .map(|w| w.trim_end_matches("..."))
                    .collect();
                if n.starts_with("--") {
                    t.starts_with('-') && first.contains(&n)
                } else if let Some(bare) = n.strip_prefix('<').and_then(|b| b.strip_suffix('>')) {
                    t.starts_with(n) || t.starts_with(&format!("[{bare}]"))
                } else {
                    first.first() == Some(&n)
                }
            })
        };
        let mut names: Vec<String> = cmd
            .get_subcommands()
            .filter(|s| s.get_name() != "help")
            .map(|s| s.get_name().to_owned())
            .collect();
        for a in visible_args(&cmd) {
            names.push(match (a.get_long(), a.get_value_names()) {
                (Some(l), _) => format!("--{l}"),
                (None, Some(v)) => format!("<{}>", v[0]),
                (None, None) => format!("<{}>", a.get_id().as_str().to_uppercase()),
            });
        }
        assert!(!names.is_empty(), "{args:?}: nothing to look for");
        for n in names {
            let i = find(&n).unwrap_or_else(|| panic!("{args:?}: {n} is not listed:\n{help}"));
            // Text after the name (and its value placeholder), on its line
            // or, in clap's long layout, on the next.
            let words = lines[i].split_whitespace().count();
            let indent = |l: &str| l.len() - l.trim_start().len();
            let next = lines
                .get(i + 1)
                .is_some_and(|l| !l.trim().is_empty() && indent(l) > indent(lines[i]));
            assert!(words >= 3 || next, "{args:?}: {n} has no help text: {:?}", lines[i]);
        }
    }
}

/// `--json` is on the operator commands only, `--config` on `serve` and
/// the operator commands; `demo` has its own `--demo-config` only.
#[test]
fn json_and_config_sit_where_they_mean_something() {
    let not_operator = ["serve", "check-config", "demo", "sample-upstream"];
    for (path, cmd) in tree() {
        if path.is_empty() {
            continue;
        }
        let has = |long: &str| visible_args(&cmd).any(|a| a.get_long() == Some(long));
        let top = path[0].as_str();
        let name = path.join(" ");
        if not_operator.contains(&top) {
            assert!(!has("json"), "{name} shows --json");
            assert_eq!(has("config"), top == "serve", "{name}: --config");
        } else {
            assert!(has("json"), "{name} lacks --json");
            assert!(has("config"), "{name} lacks --config");
        }
        assert_eq!(has("demo-config"), top == "demo", "{name}: --demo-config");
    }
    // The older form (before the command) still works where it means
    // something, and is refused where it does not.
    let dir = tempfile::tempdir().unwrap();
    let cfg = fresh_config(dir.path());
    let cfg = cfg.to_str().unwrap();
    let out = run(&["--config", cfg, "--json", "org", "list"], dir.path(), &[]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");
    let out = run(&["org", "list", "--config", cfg, "--json"], dir.path(), &[]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");
    let out = run(&["--config", cfg, "demo"], dir.path(), &[]);
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--demo-config"),
        "{out:?}"
    );
    let out = run(&["--json", "check-config", cfg], dir.path(), &[]);
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--json means nothing to check-config"));
}

/// An operator command on a fresh store prints its answer and nothing on
/// stderr; `-v` brings the log lines back.
#[test]
fn operator_commands_are_quiet_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = fresh_config(dir.path());
    let cfg = cfg.to_str().unwrap();
    // The first command also generates the key-encryption key: still quiet.
    let out = run(&["org", "create", "acme", "--config", cfg], dir.path(), &[]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("created org "),
        "{out:?}"
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "stderr of org create");
    let out = run(&["org", "list", "--config", cfg], dir.path(), &[]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("\tacme\t"), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "stderr of org list");

    let out = run(&["-v", "org", "list", "--config", cfg], dir.path(), &[]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("credential store opened"),
        "-v shows the info lines: {out:?}"
    );
    // RUST_LOG still decides when set.
    let out = run(&["org", "list", "--config", cfg], dir.path(), &[("RUST_LOG", "info")]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("credential store opened"),
        "{out:?}"
    );
}

/// Logs written to a file (text or JSON) carry no ANSI escape codes.
#[test]
fn logs_to_a_file_have_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = fresh_config(dir.path());
    let cfg = cfg.to_str().unwrap();
    for text in [true, false] {
        let log = dir.path().join(format!("stderr-{text}.log"));
        let mut c = Command::new(bin());
        c.args(["-v", "org", "list", "--config", cfg])
            .current_dir(dir.path())
            .env_remove("RUST_LOG")
            .env_remove("TILEGATE_LOG_TEXT")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        if text {
            c.env("TILEGATE_LOG_TEXT", "1");
        }
        assert!(c.status().unwrap().success());
        let written = std::fs::read_to_string(&log).unwrap();
        assert!(written.contains("credential store opened"), "text {text}: {written}");
        assert!(!written.contains("\x1b["), "text {text}: colour codes in {written:?}");
    }
}
