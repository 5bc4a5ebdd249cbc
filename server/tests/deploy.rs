//! The deployment kit in `server/deploy/` as systemd reads it: the unit passes
//! `systemd-analyze verify` with no warning (Debian's systemd package provides it; the tests'
//! setup does not install systemd, so a machine without it says so and the test fails).

use std::process::Command;

#[test]
fn the_systemd_unit_verifies_without_a_warning() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/circle.service"
    ))
    .unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/circle serve"));
    // verify checks that the binary exists: point it at the one just built.
    let dir = std::env::temp_dir().join(format!("circle-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("circle.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/circle", env!("CARGO_BIN_EXE_circle")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze runs (Debian's systemd package)");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(
        said.trim().is_empty(),
        "systemd warns about the unit:\n{said}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_example_settings_name_only_flags_circle_knows() {
    let help = Command::new(env!("CARGO_BIN_EXE_circle"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let env = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/circle.env.example"
    ))
    .unwrap();
    for line in env.lines() {
        let line = line.trim_start_matches('#');
        let Some((name, _)) = line.split_once('=') else {
            continue;
        };
        if name.starts_with("CIRCLE_") {
            assert!(
                help.contains(&format!("env: {name}")),
                "{name} is not a setting of circle"
            );
        }
    }
}
