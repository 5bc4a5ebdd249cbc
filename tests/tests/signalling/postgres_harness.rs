//! The harness of the services that tests start for themselves (`circle_tests::postgres`): a real
//! PostgreSQL cluster that serves fresh databases and leaves nothing behind, and the pinned
//! schemathesis.

use std::net::TcpStream;
use std::path::Path;
use std::process::Command;

use circle_tests::postgres::{schemathesis_bin, Postgres};

#[test]
fn a_throwaway_postgres_serves_fresh_databases_and_leaves_no_instance_behind() {
    let pg = Postgres::start();
    let port = pg.port();
    let dir = pg.dir().to_owned();
    let url = pg.url();
    assert!(url.starts_with(&format!("postgres://postgres@127.0.0.1:{port}/")));
    assert_eq!(pg.psql(&url, "select 1"), "1");

    let fresh = pg.fresh_database();
    let other = pg.fresh_database();
    assert_ne!(fresh, other);
    assert_ne!(fresh, url);
    let name = fresh.rsplit('/').next().unwrap();
    assert_eq!(
        pg.psql(&fresh, "select 1, current_database()"),
        format!("1|{name}")
    );
    // Empty: no table of its own, and what one test writes stays out of another's database.
    pg.psql(&fresh, "create table t (x int); insert into t values (7)");
    assert_eq!(pg.psql(&fresh, "select x from t"), "7");
    assert_eq!(
        pg.psql(
            &other,
            "select count(*) from pg_tables where schemaname = 'public'"
        ),
        "0"
    );
    // Loopback only.
    assert_eq!(pg.psql(&fresh, "show listen_addresses"), "127.0.0.1");

    drop(pg);
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "PostgreSQL still listens on {port} after the drop"
    );
    assert!(!dir.exists(), "{} is left behind", dir.display());
}

#[test]
fn the_pinned_schemathesis_runs() {
    let pins = Path::new(env!("CARGO_MANIFEST_DIR")).join("services/requirements.txt");
    let pins = std::fs::read_to_string(&pins).unwrap();
    let pinned = pins
        .lines()
        .find_map(|line| line.trim().strip_prefix("schemathesis=="))
        .expect("requirements.txt pins schemathesis exactly");
    let out = Command::new(schemathesis_bin())
        .arg("--version")
        .output()
        .expect("schemathesis starts");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains(pinned), "pinned {pinned}, installed: {said}");
}
