//! The `lessor` CLI against a real OpenBao server: proves the commands speak the real API
//! (paths, verbs, bodies) and print what vault prints. The same tests are meant to run
//! against a lessor server later.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failure should panic

mod common;

use serde_json::Value;

/// Whether a `Key/Value` table has the row `key  value`, whatever the column width.
fn has_row(table: &str, key: &str, value: &str) -> bool {
    table.lines().any(|l| {
        l.strip_prefix(key)
            .is_some_and(|rest| rest.starts_with("  ") && rest.trim() == value)
    })
}

#[test]
fn kv_v2_round_trip() {
    let srv = dev_server!();
    let put = srv
        .lessor(&["kv", "put", "secret/app", "user=alice", "pass=s3cret"])
        .ok();
    assert!(
        put.stdout
            .starts_with("= Secret Path =\nsecret/data/app\n\n"),
        "{}",
        put.stdout
    );
    assert!(
        put.stdout.contains("version            1"),
        "{}",
        put.stdout
    );

    let get = srv.lessor(&["kv", "get", "secret/app"]).ok();
    assert!(
        get.stdout.contains(
            "==== Data ====\nKey     Value\n---     -----\npass    s3cret\nuser    alice\n"
        ),
        "{}",
        get.stdout
    );
    assert!(get.stdout.contains("======= Metadata ======="));

    // -field prints the bare value (no newline when not a terminal).
    let field = srv.lessor(&["kv", "get", "-field=user", "secret/app"]).ok();
    assert_eq!(field.stdout, "alice");

    // Every flag spelling works.
    for args in [
        &["kv", "get", "-format=json", "secret/app"][..],
        &["kv", "get", "--format=json", "secret/app"],
        &["kv", "get", "-format", "json", "secret/app"],
        &["kv", "get", "-mount=secret", "-format=json", "app"],
    ] {
        let j = srv.lessor(args).ok().json();
        assert_eq!(j["data"]["data"]["user"], "alice", "{args:?}");
        assert_eq!(j["data"]["metadata"]["version"], 1);
    }

    srv.lessor(&["kv", "patch", "secret/app", "pass=new"]).ok();
    let j = srv
        .lessor(&["kv", "get", "-format=json", "secret/app"])
        .ok()
        .json();
    assert_eq!(j["data"]["data"]["pass"], "new");
    assert_eq!(j["data"]["data"]["user"], "alice");
    assert_eq!(j["data"]["metadata"]["version"], 2);
    let old = srv
        .lessor(&["kv", "get", "-version=1", "-field=pass", "secret/app"])
        .ok();
    assert_eq!(old.stdout, "s3cret");
    let yaml = srv
        .lessor(&["kv", "get", "-format=yaml", "secret/app"])
        .ok();
    assert!(
        yaml.stdout
            .starts_with("data:\n  data:\n    pass: new\n    user: alice\n"),
        "{}",
        yaml.stdout
    );
    // read k=v goes into the query string.
    let old = srv
        .lessor(&["read", "-format=json", "secret/data/app", "version=1"])
        .ok()
        .json();
    assert_eq!(old["data"]["data"]["pass"], "s3cret");

    // check-and-set
    let cas = srv.lessor(&["kv", "put", "-cas=1", "secret/app", "x=y"]);
    assert_eq!(cas.code, 2);
    assert!(
        cas.stderr
            .contains("check-and-set parameter did not match the current version"),
        "{}",
        cas.stderr
    );

    let list = srv.lessor(&["kv", "list", "secret"]).ok();
    assert_eq!(list.stdout, "Keys\n----\napp\n");

    let meta = srv.lessor(&["kv", "metadata", "get", "secret/app"]).ok();
    assert!(
        meta.stdout
            .starts_with("== Metadata Path ==\nsecret/metadata/app\n"),
        "{}",
        meta.stdout
    );
    assert!(
        meta.stdout.contains("====== Version 2 ======"),
        "{}",
        meta.stdout
    );

    let del = srv.lessor(&["kv", "delete", "secret/app"]).ok();
    assert_eq!(
        del.stdout,
        "Success! Data deleted (if it existed) at: secret/data/app\n"
    );
    let gone = srv.lessor(&["kv", "get", "-field=user", "secret/app"]);
    assert_eq!(gone.code, 2);
    assert_eq!(gone.stderr, "No data found at secret/data/app\n");

    let undel = srv
        .lessor(&["kv", "undelete", "-versions=2", "secret/app"])
        .ok();
    assert_eq!(
        undel.stdout,
        "Success! Data written to: secret/undelete/app\n"
    );
    assert_eq!(
        srv.lessor(&["kv", "get", "-field=user", "secret/app"])
            .ok()
            .stdout,
        "alice"
    );

    srv.lessor(&["kv", "destroy", "-versions=1", "secret/app"])
        .ok();
    let j = srv
        .lessor(&["kv", "metadata", "get", "-format=json", "secret/app"])
        .ok()
        .json();
    assert_eq!(j["data"]["versions"]["1"]["destroyed"], true);

    srv.lessor(&[
        "kv",
        "metadata",
        "put",
        "-max-versions=3",
        "-custom-metadata=owner=me",
        "secret/app",
    ])
    .ok();
    let j = srv
        .lessor(&["kv", "metadata", "get", "-format=json", "secret/app"])
        .ok()
        .json();
    assert_eq!(j["data"]["max_versions"], 3);
    assert_eq!(j["data"]["custom_metadata"]["owner"], "me");

    srv.lessor(&["kv", "metadata", "delete", "secret/app"]).ok();
    let missing = srv.lessor(&["kv", "get", "secret/app"]);
    assert_eq!(missing.code, 2);
    assert_eq!(missing.stderr, "No value found at secret/data/app\n");

    let usage = srv.lessor(&["kv", "undelete", "secret/app"]);
    assert_eq!(usage.code, 1);
}

#[test]
fn kv_v1_and_generic_path_commands() {
    let srv = dev_server!();
    let en = srv
        .lessor(&[
            "secrets",
            "enable",
            "-path=old",
            "-description=legacy",
            "kv",
        ])
        .ok();
    assert_eq!(
        en.stdout,
        "Success! Enabled the kv secrets engine at: old/\n"
    );

    srv.lessor(&["kv", "put", "old/a", "k=v"]).ok();
    let get = srv.lessor(&["kv", "get", "old/a"]).ok();
    assert_eq!(
        get.stdout,
        "== Data ==\nKey    Value\n---    -----\nk      v\n"
    );
    assert_eq!(srv.lessor(&["kv", "patch", "old/a", "k=w"]).code, 2);

    // write: k=v, k=@file, @file.json, and stdin
    let file = srv.home.path().join("value.txt");
    std::fs::write(&file, "from-file").unwrap();
    let json_file = srv.home.path().join("data.json");
    std::fs::write(&json_file, r#"{"n": "json"}"#).unwrap();
    let w = srv
        .lessor(&[
            "write",
            "old/b",
            "plain=1",
            &format!("file=@{}", file.display()),
            &format!("@{}", json_file.display()),
        ])
        .ok();
    assert_eq!(w.stdout, "Success! Data written to: old/b\n");
    let r = srv.lessor(&["read", "-format=json", "old/b"]).ok().json();
    assert_eq!(r["data"]["plain"], "1");
    assert_eq!(r["data"]["file"], "from-file");
    assert_eq!(r["data"]["n"], "json");
    assert_eq!(r["lease_duration"], 2764800);
    let keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "request_id",
            "lease_id",
            "lease_duration",
            "renewable",
            "data",
            "warnings"
        ]
    );

    srv.run_with(&["write", "old/c", "-"], r#"{"from": "stdin"}"#, &[])
        .ok();
    srv.run_with(&["write", "old/d", "-"], "x=1\ny=2\n", &[])
        .ok();
    assert_eq!(
        srv.lessor(&["read", "-field=from", "old/c"]).ok().stdout,
        "stdin"
    );
    assert_eq!(srv.lessor(&["read", "-field=y", "old/d"]).ok().stdout, "2");

    let table = srv.lessor(&["read", "old/a"]).ok();
    assert_eq!(
        table.stdout,
        "Key                 Value\n---                 -----\nrefresh_interval    768h\nk                   v\n"
    );

    let list = srv.lessor(&["list", "-format=json", "old"]).ok().json();
    assert_eq!(list, serde_json::json!(["a", "b", "c", "d"]));

    assert_eq!(srv.lessor(&["write", "old/e"]).code, 1);
    let created = srv
        .lessor(&["write", "-force", "-field=token", "auth/token/create"])
        .ok();
    assert!(!created.stdout.is_empty());

    let del = srv.lessor(&["delete", "old/a"]).ok();
    assert_eq!(
        del.stdout,
        "Success! Data deleted (if it existed) at: old/a\n"
    );
    let missing = srv.lessor(&["read", "old/a"]);
    assert_eq!(missing.code, 2);
    assert_eq!(missing.stderr, "No value found at old/a\n");
    let none = srv.lessor(&["list", "old/nothing"]);
    assert_eq!(none.code, 2);
}

#[test]
fn errors_exit_codes_and_invocation() {
    let srv = dev_server!();
    let denied = srv.run_with(
        &["read", "secret/data/x"],
        "",
        &[("VAULT_TOKEN", Some("bogus"))],
    );
    assert_eq!(denied.code, 2);
    // Vault lists "permission denied" (newer versions add "invalid token" after it).
    let head = format!(
        "Error reading secret/data/x: Error making API request.\n\nURL: GET {}/v1/secret/data/x\nCode: 403. Errors:\n\n* ",
        srv.addr
    );
    assert!(denied.stderr.starts_with(&head), "{}", denied.stderr);
    assert!(
        denied.stderr.contains("permission denied"),
        "{}",
        denied.stderr
    );

    let bad_flag = srv.lessor(&["read", "-bogus", "x"]);
    assert_eq!(
        (bad_flag.code, bad_flag.stderr.as_str()),
        (1, "flag provided but not defined: -bogus\n")
    );
    let too_many = srv.lessor(&["list", "a", "b"]);
    assert_eq!(
        (too_many.code, too_many.stderr.as_str()),
        (1, "Too many arguments (expected 1, got 2)\n")
    );
    assert_eq!(srv.lessor(&["no-such-command"]).code, 127);

    // VAULT_FORMAT and BAO_* variables.
    let j = srv.run_with(
        &["read", "sys/policy"],
        "",
        &[
            ("VAULT_FORMAT", Some("json")),
            ("VAULT_ADDR", None),
            ("BAO_ADDR", Some(&srv.addr)),
        ],
    );
    assert_eq!(j.ok().json()["data"]["keys"][0], "default");

    // An unreachable server: transport error, exit 2.
    let down = srv.run_with(
        &["read", "x"],
        "",
        &[("VAULT_ADDR", Some("http://127.0.0.1:1"))],
    );
    assert_eq!(down.code, 2);
    assert!(
        down.stderr
            .starts_with("Error reading x: Get \"http://127.0.0.1:1/v1/x\": "),
        "{}",
        down.stderr
    );

    // Invoked through a symlink named `vault`, it is the same program.
    let link = srv.home.path().join("vault");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_lessor"), &link).unwrap();
    let out = std::process::Command::new(&link)
        .args(["status", "-format=json"])
        .env("VAULT_ADDR", &srv.addr)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["sealed"], false);
    assert_eq!(status["ha_enabled"], false);
}

#[test]
fn policies_tokens_and_login() {
    let srv = dev_server!();
    let policy = "path \"secret/data/*\" {\n  capabilities = [\"read\"]\n}\n";
    let up = srv
        .run_with(&["policy", "write", "reader", "-"], policy, &[])
        .ok();
    assert_eq!(up.stdout, "Success! Uploaded policy: reader\n");
    assert_eq!(
        srv.lessor(&["policy", "read", "reader"]).ok().stdout,
        policy
    );
    assert_eq!(
        srv.lessor(&["policy", "list"]).ok().stdout,
        "default\nreader\nroot\n"
    );

    let created = srv
        .lessor(&[
            "token",
            "create",
            "-policy=reader",
            "-policy",
            "default",
            "-ttl=1h",
            "-metadata=team=ops",
            "-display-name=ci",
            "-format=json",
        ])
        .ok()
        .json();
    let token = created["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    let accessor = created["auth"]["accessor"].as_str().unwrap().to_string();
    assert_eq!(created["auth"]["lease_duration"], 3600);
    assert_eq!(
        created["auth"]["token_policies"],
        serde_json::json!(["default", "reader"])
    );
    assert_eq!(created["auth"]["metadata"]["team"], "ops");

    let table = srv
        .lessor(&["token", "create", "-policy=reader", "-ttl=90m"])
        .ok();
    assert!(
        table.stdout.contains("token_duration       1h30m\n"),
        "{}",
        table.stdout
    );
    assert!(
        table
            .stdout
            .contains("token_policies       [\"default\" \"reader\"]\n"),
        "{}",
        table.stdout
    );

    let look = srv
        .lessor(&["token", "lookup", "-format=json", &token])
        .ok()
        .json();
    assert_eq!(look["data"]["display_name"], "token-ci");
    let look = srv
        .lessor(&[
            "token",
            "lookup",
            "-accessor",
            "-field=display_name",
            &accessor,
        ])
        .ok();
    assert_eq!(look.stdout, "token-ci");
    let renewed = srv
        .lessor(&["token", "renew", "-increment=30m", "-format=json", &token])
        .ok()
        .json();
    assert_eq!(renewed["auth"]["lease_duration"], 1800);

    // login stores the token in ~/.vault-token; later commands without VAULT_TOKEN use it.
    let login = srv
        .run_with(&["login", &token], "", &[("VAULT_TOKEN", None)])
        .ok();
    assert!(
        login
            .stdout
            .starts_with("Success! You are now authenticated."),
        "{}",
        login.stdout
    );
    assert!(
        login
            .stdout
            .contains("token_policies       [\"default\" \"reader\"]"),
        "{}",
        login.stdout
    );
    let stored = std::fs::read_to_string(srv.home.path().join(".vault-token")).unwrap();
    assert_eq!(stored, token);
    let me = srv.run_with(
        &["token", "lookup", "-field=display_name"],
        "",
        &[("VAULT_TOKEN", None)],
    );
    assert_eq!(me.ok().stdout, "token-ci");

    // The token from stdin, -no-store, -token-only.
    std::fs::remove_file(srv.home.path().join(".vault-token")).unwrap();
    let login = srv
        .run_with(
            &["login", "-no-store", "-format=json"],
            &format!("{token}\n"),
            &[],
        )
        .ok();
    assert_eq!(login.json()["auth"]["client_token"], token.as_str());
    assert!(!srv.home.path().join(".vault-token").exists());
    let only = srv.lessor(&["login", "-token-only", &token]).ok();
    assert_eq!(only.stdout, token);

    let bad = srv.lessor(&["login", "not-a-token"]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr
            .starts_with("Error looking up token: Error making API request."),
        "{}",
        bad.stderr
    );

    let revoked = srv.lessor(&["token", "revoke", &token]).ok();
    assert_eq!(revoked.stdout, "Success! Revoked token (if it existed)\n");
    assert_eq!(srv.lessor(&["token", "lookup", &token]).code, 2);
    assert_eq!(srv.lessor(&["token", "revoke"]).code, 1);

    let child = srv
        .lessor(&["token", "create", "-field=token", "-policy=default"])
        .ok()
        .stdout;
    srv.run_with(
        &["token", "revoke", "-self"],
        "",
        &[("VAULT_TOKEN", Some(&child))],
    )
    .ok();
    assert_eq!(srv.lessor(&["token", "lookup", &child]).code, 2);

    let del = srv.lessor(&["policy", "delete", "reader"]).ok();
    assert_eq!(del.stdout, "Success! Deleted policy: reader\n");
    let missing = srv.lessor(&["policy", "read", "reader"]);
    assert_eq!(
        (missing.code, missing.stderr.as_str()),
        (2, "No policy named: reader\n")
    );
}

#[test]
fn mounts_auth_methods_and_method_login() {
    let srv = dev_server!();
    srv.lessor(&[
        "secrets",
        "enable",
        "-path=team",
        "-default-lease-ttl=1h",
        "-max-lease-ttl=2h",
        "-version=2",
        "-options=foo=bar",
        "kv",
    ])
    .ok();
    let mounts = srv.lessor(&["secrets", "list", "-format=json"]).ok().json();
    assert_eq!(mounts["team/"]["config"]["default_lease_ttl"], 3600);
    assert_eq!(mounts["team/"]["options"]["version"], "2");
    assert_eq!(mounts["team/"]["options"]["foo"], "bar");
    let tuned = srv
        .lessor(&["secrets", "tune", "-max-lease-ttl=3h", "team"])
        .ok();
    assert_eq!(
        tuned.stdout,
        "Success! Tuned the secrets engine at: team/\n"
    );
    let list = srv.lessor(&["secrets", "list"]).ok();
    assert!(
        list.stdout
            .starts_with("Path          Type         Accessor"),
        "{}",
        list.stdout
    );
    assert!(
        srv.lessor(&["secrets", "list", "-detailed"])
            .ok()
            .stdout
            .contains("10800")
    );
    srv.lessor(&["kv", "put", "team/x", "a=b"]).ok();
    assert_eq!(
        srv.lessor(&["kv", "get", "-field=a", "team/x"]).ok().stdout,
        "b"
    );

    let en = srv.lessor(&["auth", "enable", "approle"]).ok();
    assert_eq!(
        en.stdout,
        "Success! Enabled approle auth method at: approle/\n"
    );
    let auths = srv.lessor(&["auth", "list", "-format=json"]).ok().json();
    assert_eq!(auths["approle/"]["type"], "approle");
    srv.lessor(&[
        "write",
        "auth/approle/role/ci",
        "token_policies=default",
        "token_ttl=20m",
    ])
    .ok();
    let role_id = srv
        .lessor(&["read", "-field=role_id", "auth/approle/role/ci/role-id"])
        .ok()
        .stdout;
    let secret_id = srv
        .lessor(&[
            "write",
            "-f",
            "-field=secret_id",
            "auth/approle/role/ci/secret-id",
        ])
        .ok()
        .stdout;
    let login = srv
        .lessor(&[
            "login",
            "-method=approle",
            "-format=json",
            &format!("role_id={role_id}"),
            &format!("secret_id={secret_id}"),
        ])
        .ok()
        .json();
    assert_eq!(login["auth"]["lease_duration"], 1200);
    let token = login["auth"]["client_token"].as_str().unwrap();
    let stored = std::fs::read_to_string(srv.home.path().join(".vault-token")).unwrap();
    assert_eq!(stored, token);

    // A method mounted elsewhere: -path.
    srv.lessor(&["auth", "enable", "-path=robots", "approle"])
        .ok();
    srv.lessor(&["write", "auth/robots/role/r", "token_policies=default"])
        .ok();
    let role_id = srv
        .lessor(&["read", "-field=role_id", "auth/robots/role/r/role-id"])
        .ok()
        .stdout;
    let secret_id = srv
        .lessor(&[
            "write",
            "-f",
            "-field=secret_id",
            "auth/robots/role/r/secret-id",
        ])
        .ok()
        .stdout;
    // A stale VAULT_TOKEN does not get in the way of logging in.
    let only = srv
        .run_with(
            &[
                "login",
                "-method=approle",
                "-path=robots",
                "-token-only",
                &format!("role_id={role_id}"),
                &format!("secret_id={secret_id}"),
            ],
            "",
            &[("VAULT_TOKEN", Some("stale"))],
        )
        .ok();
    assert!(!only.stdout.is_empty() && !only.stdout.contains('\n'));
    let failed = srv.lessor(&[
        "login",
        "-method=approle",
        "-path=robots",
        "role_id=nope",
        "secret_id=nope",
    ]);
    assert_eq!(failed.code, 2);
    assert!(
        failed
            .stderr
            .starts_with("Error authenticating: Error making API request."),
        "{}",
        failed.stderr
    );

    let dis = srv.lessor(&["auth", "disable", "robots"]).ok();
    assert_eq!(
        dis.stdout,
        "Success! Disabled the auth method (if it existed) at: robots/\n"
    );
    let dis = srv.lessor(&["secrets", "disable", "team/"]).ok();
    assert_eq!(
        dis.stdout,
        "Success! Disabled the secrets engine (if it existed) at: team/\n"
    );
    assert!(
        srv.lessor(&["secrets", "list", "-format=json"])
            .ok()
            .json()
            .get("team/")
            .is_none()
    );
}

#[test]
fn leases() {
    let srv = dev_server!();
    let lookup = srv.lessor(&["lease", "lookup", "nope/1"]);
    assert_eq!(lookup.code, 2);
    assert!(
        lookup
            .stderr
            .starts_with("error looking up lease id nope/1: Error making API request."),
        "{}",
        lookup.stderr
    );
    assert!(lookup.stderr.contains("URL: PUT "), "{}", lookup.stderr);
    let renew = srv.lessor(&["lease", "renew", "-increment=1h", "nope/1"]);
    assert_eq!(renew.code, 2);
    assert!(
        renew.stderr.starts_with("Error renewing nope/1: "),
        "{}",
        renew.stderr
    );

    let queued = srv.lessor(&["lease", "revoke", "nope/1"]).ok();
    assert_eq!(
        queued.stdout,
        "All revocation operations queued successfully!\n"
    );
    let sync = srv.lessor(&["lease", "revoke", "-sync", "nope/1"]).ok();
    assert_eq!(sync.stdout, "Success! Revoked lease: nope/1\n");
    let prefix = srv
        .lessor(&["lease", "revoke", "-prefix", "-sync", "nope/"])
        .ok();
    assert_eq!(
        prefix.stdout,
        "Success! Revoked any leases with prefix: nope/\n"
    );
    let force = srv
        .lessor(&["lease", "revoke", "-force", "-prefix", "nope"])
        .ok();
    assert_eq!(
        force.stdout,
        "Success! Force revoked any leases with prefix: nope\n"
    );
    // -force implies -prefix.
    srv.lessor(&["lease", "revoke", "-force", "nope"]).ok();
}

#[test]
fn operator_init_unseal_seal_status() {
    let Some(srv) = common::start_sealed() else {
        return;
    };
    let before = srv.lessor(&["status"]);
    assert_eq!(before.code, 2);
    assert!(
        has_row(&before.stdout, "Initialized", "false"),
        "{}",
        before.stdout
    );
    assert_eq!(srv.lessor(&["operator", "init", "-status"]).code, 2);

    let init = srv
        .lessor(&[
            "operator",
            "init",
            "-key-shares=3",
            "-key-threshold=2",
            "-format=json",
        ])
        .ok()
        .json();
    let keys: Vec<String> = init["unseal_keys_b64"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys.len(), 3);
    assert_eq!(init["unseal_keys_hex"].as_array().unwrap().len(), 3);
    assert_eq!(
        (
            init["unseal_shares"].as_i64(),
            init["unseal_threshold"].as_i64()
        ),
        (Some(3), Some(2))
    );
    let root = init["root_token"].as_str().unwrap().to_string();
    assert_eq!(srv.lessor(&["operator", "init", "-status"]).code, 0);
    let again = srv.lessor(&["operator", "init"]);
    assert_eq!(again.code, 2);
    assert!(
        again
            .stderr
            .starts_with("Error initializing: Error making API request."),
        "{}",
        again.stderr
    );

    let first = srv.lessor(&["operator", "unseal", &keys[0]]).ok();
    assert!(
        has_row(&first.stdout, "Unseal Progress", "1/2"),
        "{}",
        first.stdout
    );
    let reset = srv
        .lessor(&["operator", "unseal", "-reset", "-format=json"])
        .ok()
        .json();
    assert_eq!(reset["progress"], 0);
    srv.lessor(&["operator", "unseal", &keys[1]]).ok();
    // The key from stdin when no argument is given.
    let last = srv
        .run_with(
            &["operator", "unseal", "-format=json"],
            &format!("{}\n", keys[2]),
            &[],
        )
        .ok();
    assert_eq!(last.json()["sealed"], false);

    let status = srv.lessor(&["status"]).ok();
    assert!(
        has_row(&status.stdout, "Sealed", "false"),
        "{}",
        status.stdout
    );
    assert!(!status.stdout.contains("Unseal Progress"));

    let denied = srv.lessor(&["operator", "seal"]);
    assert_eq!(denied.code, 2);
    let sealed = srv
        .run_with(&["operator", "seal"], "", &[("VAULT_TOKEN", Some(&root))])
        .ok();
    assert_eq!(sealed.stdout, "Success! Vault is sealed.\n");
    assert_eq!(srv.lessor(&["status"]).code, 2);

    // Unreachable server: status exits 1.
    let down = srv.run_with(
        &["status"],
        "",
        &[("VAULT_ADDR", Some("http://127.0.0.1:1"))],
    );
    assert_eq!(down.code, 1);
    assert!(
        down.stderr.starts_with("Error checking seal status: "),
        "{}",
        down.stderr
    );
}

#[test]
fn tls_ca_cert_and_skip_verify() {
    let Some(srv) = common::start_dev_tls() else {
        return;
    };
    let ca = srv.ca_cert.clone().unwrap();
    // VAULT_CACERT (set by the harness) verifies the server.
    assert_eq!(
        srv.lessor(&["read", "-field=keys", "sys/policy"])
            .ok()
            .stdout,
        "[default root]"
    );
    // Without the CA the handshake fails.
    let untrusted = srv.run_with(&["read", "sys/policy"], "", &[("VAULT_CACERT", None)]);
    assert_eq!(untrusted.code, 2);
    assert!(
        untrusted.stderr.contains("certificate"),
        "{}",
        untrusted.stderr
    );
    // -ca-cert, -tls-skip-verify and VAULT_SKIP_VERIFY.
    let ca_flag = format!("-ca-cert={}", ca.display());
    for (args, env) in [
        (
            vec!["read", ca_flag.as_str(), "sys/policy"],
            vec![("VAULT_CACERT", None)],
        ),
        (
            vec!["read", "-tls-skip-verify", "sys/policy"],
            vec![("VAULT_CACERT", None)],
        ),
        (
            vec!["read", "sys/policy"],
            vec![("VAULT_CACERT", None), ("VAULT_SKIP_VERIFY", Some("true"))],
        ),
    ] {
        let run = srv.run_with(&args, "", &env);
        assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
    }
}

#[test]
fn token_create_flags_and_userpass_login() {
    let srv = dev_server!();
    let t = srv
        .lessor(&[
            "token",
            "create",
            "-orphan",
            "-period=30m",
            "-explicit-max-ttl=2h",
            "-use-limit=5",
            "-renewable=false",
            "-no-default-policy",
            "-policy=p1",
            "-format=json",
        ])
        .ok()
        .json();
    assert_eq!(t["auth"]["orphan"], true);
    assert_eq!(t["auth"]["renewable"], false);
    assert_eq!(t["auth"]["token_policies"], serde_json::json!(["p1"]));
    let token = t["auth"]["client_token"].as_str().unwrap();
    let look = srv
        .lessor(&["token", "lookup", "-format=json", token])
        .ok()
        .json();
    assert_eq!(look["data"]["period"], 1800);
    assert_eq!(look["data"]["explicit_max_ttl"], 7200);
    assert_eq!(look["data"]["num_uses"], 5);
    let table = srv.lessor(&["token", "lookup", token]).ok();
    assert!(has_row(&table.stdout, "period", "30m"), "{}", table.stdout);
    assert!(
        has_row(&table.stdout, "explicit_max_ttl", "2h"),
        "{}",
        table.stdout
    );

    srv.lessor(&[
        "write",
        "auth/token/roles/svc",
        "allowed_policies=p2",
        "orphan=true",
    ])
    .ok();
    let r = srv
        .lessor(&["token", "create", "-role=svc", "-policy=p2", "-format=json"])
        .ok()
        .json();
    assert_eq!(r["auth"]["orphan"], true);
    assert!(
        r["auth"]["policies"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("p2"))
    );

    if common::against_lessor() {
        eprintln!("lessor has no userpass method: the rest of this test is OpenBao-only");
        return;
    }
    srv.lessor(&["auth", "enable", "userpass"]).ok();
    srv.lessor(&[
        "write",
        "auth/userpass/users/ann",
        "password=pw",
        "token_policies=default",
    ])
    .ok();
    let login = srv
        .lessor(&[
            "login",
            "-method=userpass",
            "-no-store",
            "-field=token_policies",
            "username=ann",
            "password=pw",
        ])
        .ok();
    assert_eq!(login.stdout, "[default]");
    let bad = srv.lessor(&[
        "login",
        "-method=userpass",
        "username=ann",
        "password=wrong",
    ]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("invalid username or password"),
        "{}",
        bad.stderr
    );
}

#[test]
fn response_wrapping() {
    let srv = dev_server!();
    srv.lessor(&["kv", "put", "secret/w", "k=v"]).ok();
    let wrapped = srv
        .lessor(&["kv", "get", "-wrap-ttl=5m", "-format=json", "secret/w"])
        .ok()
        .json();
    assert_eq!(wrapped["wrap_info"]["ttl"], 300);
    assert_eq!(wrapped["wrap_info"]["creation_path"], "secret/data/w");
    let token = srv
        .lessor(&[
            "read",
            "-wrap-ttl=1m",
            "-field=wrapping_token",
            "secret/data/w",
        ])
        .ok()
        .stdout;
    let table = srv.lessor(&["read", "-wrap-ttl=1m", "secret/data/w"]).ok();
    assert!(
        table.stdout.contains("wrapping_token_ttl:"),
        "{}",
        table.stdout
    );
    let unwrapped = srv.lessor(&["unwrap", "-format=json", &token]).ok().json();
    assert_eq!(unwrapped["data"]["data"]["k"], "v");
    // A wrapping token works once.
    assert_eq!(srv.lessor(&["unwrap", &token]).code, 2);
}

/// A real lease from OpenBao's PKI engine (`generate_lease`): lookup, renew, revoke.
#[test]
fn lease_lifecycle_on_a_real_lease() {
    if common::against_lessor() {
        eprintln!("skipping: lessor has no PKI engine to issue a lease from");
        return;
    }
    let srv = dev_server!();
    srv.lessor(&["secrets", "enable", "pki"]).ok();
    srv.lessor(&[
        "write",
        "-f",
        "pki/root/generate/internal",
        "common_name=test",
        "ttl=24h",
    ])
    .ok();
    srv.lessor(&[
        "write",
        "pki/roles/r",
        "allow_any_name=true",
        "generate_lease=true",
        "max_ttl=1h",
    ])
    .ok();
    let issue = |cn: &str| {
        srv.lessor(&[
            "write",
            "-field=lease_id",
            "pki/issue/r",
            &format!("common_name={cn}"),
            "ttl=10m",
        ])
        .ok()
        .stdout
    };
    let id = issue("a.test");
    assert!(id.starts_with("pki/issue/r/"), "{id}");

    let look = srv
        .lessor(&["lease", "lookup", "-format=json", &id])
        .ok()
        .json();
    assert_eq!(look["data"]["id"], id.as_str());
    assert!(look["data"]["ttl"].as_i64().unwrap() > 500);
    let table = srv.lessor(&["lease", "lookup", &id]).ok();
    assert!(
        table
            .stdout
            .lines()
            .any(|l| l.starts_with("id ") && l.ends_with(&id)),
        "{}",
        table.stdout
    );
    assert_eq!(srv.lessor(&["lease", "renew", &id]).code, 2);

    let revoked = srv.lessor(&["lease", "revoke", "-sync", &id]).ok();
    assert_eq!(revoked.stdout, format!("Success! Revoked lease: {id}\n"));
    assert_eq!(srv.lessor(&["lease", "lookup", &id]).code, 2);

    let (a, b) = (issue("b.test"), issue("c.test"));
    srv.lessor(&["lease", "revoke", "-prefix", "-sync", "pki/issue/r/"])
        .ok();
    for id in [a, b] {
        assert_eq!(
            srv.lessor(&["lease", "lookup", &id]).code,
            2,
            "{id} still there"
        );
    }
}
