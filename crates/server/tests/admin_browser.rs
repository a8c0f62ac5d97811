//! The web admin in a real browser: headless Chromium driven through chromedriver (WebDriver,
//! with fantoccini) against the real `rulebook serve` binary on a fresh SQLite file. One story,
//! each step checked on the page and, where that proves the point, in the store through the
//! API: sign in; create a rule with a validation error, fix it, save; edit a stale version and
//! see the conflict; try the edit as a draft beside the saved rules; try an entry point; view a
//! diff and roll back; clear the cache; sign out; a read-only token sees no edit controls and
//! its forged form is refused by the server; a form without the session's CSRF token is
//! refused.
//!
//! Under `CI=true` a missing `chromium` or `chromedriver` fails the test (install them with
//! `apt-get install chromium chromium-driver`); elsewhere the test says why it skips.
//! With `RULEBOOK_SCREENSHOTS=1` the screenshots the README shows are written to `docs/`;
//! otherwise they go to a temporary folder, with views 390 px wide beside them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{binary, http, Running};
use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::Method;
use serde_json::{json, Value};

/// An executable on `PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// chromedriver on a free port, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    async fn start(path: &Path) -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new(path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let url = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(r) = client.get(format!("{url}/status")).send().await {
                if r.status() == 200 {
                    return Driver { child, url };
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("chromedriver did not answer on {url}");
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The browser, at the server's base URL.
struct Browser {
    client: Client,
    base: String,
    shots: PathBuf,
}

impl Browser {
    async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
    }

    async fn text(&self, css: &str) -> String {
        match self.client.find(Locator::Css(css)).await {
            Ok(element) => element.text().await.unwrap(),
            Err(e) => panic!("no `{css}` on the page: {e}\n{}", self.page().await),
        }
    }

    async fn has(&self, css: &str) -> bool {
        !self
            .client
            .find_all(Locator::Css(css))
            .await
            .unwrap()
            .is_empty()
    }

    async fn page(&self) -> String {
        self.client.source().await.unwrap_or_default()
    }

    /// Replaces the value of the field `css` (an input or a text area) with `value`.
    async fn fill(&self, css: &str, value: &str) {
        let field = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no `{css}` on the page: {e}"));
        field.clear().await.unwrap();
        field.send_keys(value).await.unwrap();
    }

    async fn value(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap()
            .unwrap_or_default()
    }

    /// Clicks `css` and waits for the next page (the old one's root element goes stale) to
    /// show `then`.
    async fn click(&self, css: &str, then: &str) {
        let old = self.client.find(Locator::Css("html")).await.unwrap();
        match self.client.find(Locator::Css(css)).await {
            Ok(element) => element.click().await.unwrap(),
            Err(e) => panic!("no `{css}` to click: {e}\n{}", self.page().await),
        }
        let mut replaced = false;
        for _ in 0..400 {
            if old.tag_name().await.is_err() {
                replaced = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(replaced, "clicking `{css}` did not load a page");
        self.client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(then))
            .await
            .unwrap_or_else(|e| panic!("after clicking `{css}`, no `{then}`: {e}"));
    }

    async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.unwrap();
        let path = self.shots.join(name);
        std::fs::write(&path, &png).unwrap();
        path
    }

    async fn cookie(&self, name: &str) -> String {
        self.client
            .get_named_cookie(name)
            .await
            .unwrap()
            .value()
            .to_owned()
    }

    /// The CSRF token in the current page's forms.
    async fn csrf(&self) -> String {
        self.client
            .find(Locator::Css("input[name=csrf]"))
            .await
            .unwrap()
            .attr("value")
            .await
            .unwrap()
            .unwrap()
    }
}

fn token(database_url: &str, name: &str, role: &str) -> String {
    let output = binary()
        .args([
            "tokens",
            "create",
            "--database-url",
            database_url,
            "--name",
            name,
            "--role",
            role,
            "--json",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let body: Value = serde_json::from_slice(&output.stdout).unwrap();
    body["secret"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rule_author_uses_the_admin_in_a_browser() {
    let (Some(driver_path), Some(chromium)) = (
        on_path("chromedriver"),
        [PathBuf::from("/usr/lib/chromium/chromium")]
            .into_iter()
            .find(|p| p.is_file())
            .or_else(|| on_path("chromium")),
    ) else {
        let why = "chromium and chromedriver are not both on PATH: install them with \
                   `apt-get install chromium chromium-driver` (.ci/run does)";
        if rulebook_testkit::in_ci() {
            panic!("{why}");
        }
        eprintln!("skipping the browser test: {why}");
        return;
    };

    let dir = tempfile::tempdir().unwrap();
    let database_url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("admin.db").display()
    );
    let server = Running::start(&database_url, &[]);
    server.ready().await;
    let admin_token = server.token.clone().expect("a first start prints a token");
    let author_token = token(&database_url, "alice", "admin");
    let read_token = token(&database_url, "viewer", "read");
    let created = binary()
        .args(["tenants", "create", "acme", "--database-url", &database_url])
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");

    let driver = Driver::start(&driver_path).await;
    let profile = tempfile::tempdir().unwrap();
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        json!({
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900",
                "--disable-dev-shm-usage", "--hide-scrollbars",
                format!("--user-data-dir={}", profile.path().display()),
            ]
        }),
    );
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a Chromium session through chromedriver");
    let shots = if std::env::var("RULEBOOK_SCREENSHOTS").as_deref() == Ok("1") {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs")
    } else {
        dir.path().to_path_buf()
    };
    std::fs::create_dir_all(&shots).unwrap();
    let b = Browser {
        client,
        base: server.base.clone(),
        shots,
    };
    let api =
        |method: Method, path: &str, body: Option<Value>, headers: Vec<(&'static str, String)>| {
            let url = server.url(path);
            let client = server.client.clone();
            let token = admin_token.clone();
            async move {
                let headers: Vec<(&str, &str)> =
                    headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
                http(&client, method, &url, Some(&token), &headers, body).await
            }
        };

    // Sign in. A wrong token is refused on the page and counted with the API's failures.
    b.goto("/admin").await;
    b.fill("#token", "rb_not-a-token").await;
    b.click("#sign-in", "#sign-in-error").await;
    assert!(b.text("#sign-in-error").await.contains("not valid"));
    let (_, _, _) = api(Method::GET, "/health", None, vec![]).await;
    let metrics = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("rulebook_auth_failures_total{reason=\"invalid_token\"} 1"),
        "a failed sign-in is counted:\n{}",
        metrics
            .lines()
            .filter(|l| l.contains("auth"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    b.fill("#token", &author_token).await;
    b.click("#sign-in", "#entry-points").await;
    assert!(b.text(".who").await.contains("alice"));
    let page = b.page().await;
    assert!(
        !page.contains(&author_token),
        "the token is never in a page"
    );
    let session = b.client.get_named_cookie("rulebook_session").await.unwrap();
    assert_eq!(session.http_only(), Some(true));
    assert_eq!(format!("{:?}", session.same_site()), "Some(Strict)");
    assert!(b.text("#entry-points").await.contains("checkout_terms"));

    // Tenants: the switch offers those the token sees, and the pages follow it.
    let switch = |tenant: &'static str| {
        let client = b.client.clone();
        async move {
            client
                .find(Locator::Css("#tenant-switch"))
                .await
                .unwrap()
                .select_by_value(tenant)
                .await
                .unwrap();
        }
    };
    switch("acme").await;
    b.click("#switch-tenant", "#entry-points").await;
    assert!(b.text("h1").await.contains("in acme"));
    assert!(!b.text("#entry-points").await.contains("checkout_terms"));
    switch("default").await;
    b.click("#switch-tenant", "#entry-points").await;
    assert!(b.text("h1").await.contains("in default"));

    // Create a rule with a validation error: the error is at its field, not in a banner.
    b.goto("/admin/new?entry_point=checkout_terms").await;
    b.fill("#id", "checkout_fr_notice").await;
    b.fill("#name", "French legal notice").await;
    b.fill("#priority", "soon").await;
    b.fill("#tags", "country:FR, legal").await;
    b.fill("#condition", "{\"==\": [{\"var\": \"country\"}, \"FR\"]}")
        .await;
    b.fill(
        "#actions",
        "[\n  {\"type\": \"display_message\", \"message\": \"Mentions légales\"}\n]",
    )
    .await;
    b.fill("#reason", "legal asked for it").await;
    b.click("#save", "#priority-error").await;
    assert!(
        b.text("#priority-error").await.contains("whole number"),
        "{}",
        b.text("#priority-error").await
    );
    assert!(
        !b.has("#error").await && !b.has("#form-errors").await,
        "no banner"
    );
    assert_eq!(
        b.client
            .find(Locator::Css("#priority"))
            .await
            .unwrap()
            .attr("aria-invalid")
            .await
            .unwrap()
            .as_deref(),
        Some("true")
    );
    assert!(
        b.value("#actions").await.contains("\n  {\"type\""),
        "the text area keeps the author's indentation"
    );
    let editor_shot = b.screenshot("admin-editor.png").await;
    let (status, _, _) = api(Method::GET, "/v1/rules/checkout_fr_notice", None, vec![]).await;
    assert_eq!(status, 404, "nothing was saved");
    b.fill("#priority", "15").await;
    b.click("#save", "#notice").await;
    assert_eq!(b.text("#notice").await, "Saved version 1.");
    let (status, _, rule) = api(Method::GET, "/v1/rules/checkout_fr_notice", None, vec![]).await;
    assert_eq!(status, 200);
    assert_eq!(rule["priority"], 15);
    assert_eq!(rule["tags"], json!(["country:FR", "legal"]));
    assert_eq!(rule["updated_by"], "alice");

    // Browse: the entry point's rules in evaluation order, and search.
    b.goto("/admin/rules?entry_point=checkout_terms").await;
    let rows = b.text("#rules tbody").await;
    let order: Vec<usize> = [
        "checkout_terms_banner",
        "checkout_fr_notice",
        "checkout_terms_marketplace",
    ]
    .iter()
    .map(|id| {
        rows.find(id)
            .unwrap_or_else(|| panic!("{id} listed:\n{rows}"))
    })
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "by priority: {rows}");
    let list_shot = b.screenshot("admin-rules.png").await;
    b.goto("/admin/rules?q=legal").await;
    let rows = b.text("#rules tbody").await;
    assert!(
        rows.contains("checkout_fr_notice") && !rows.contains("checkout_terms_banner"),
        "{rows}"
    );

    // Edit a stale version: someone saves version 2 meanwhile; the conflict shows what changed.
    b.goto("/admin/rule/checkout_fr_notice").await;
    let (_, headers, mut current) =
        api(Method::GET, "/v1/rules/checkout_fr_notice", None, vec![]).await;
    current["name"] = json!("French notice (legal)");
    current["reason"] = json!("wording");
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let (status, _, _) = api(
        Method::PUT,
        "/v1/rules/checkout_fr_notice",
        Some(current),
        vec![("if-match", etag)],
    )
    .await;
    assert_eq!(status, 200);
    b.fill("#category", "legal").await;
    b.fill("#reason", "categorise").await;
    b.click("#save", "#conflict").await;
    let conflict = b.text("#conflict").await;
    assert!(conflict.contains("saved version 2"), "{conflict}");
    assert!(conflict.contains("French notice (legal)"), "{conflict}");
    assert_eq!(b.value("#category").await, "legal", "the edit is kept");
    let (_, _, rule) = api(Method::GET, "/v1/rules/checkout_fr_notice", None, vec![]).await;
    assert_eq!(
        (rule["version"].as_i64(), rule["category"].as_str()),
        (Some(2), Some(""))
    );
    b.click("#reload", "#condition").await;
    assert!(b.text("h1").await.contains("version 2"));

    // Try the unsaved edit as a draft beside the saved rules; nothing is saved.
    b.fill("#condition", "{\"==\": [{\"var\": \"country\"}, \"BE\"]}")
        .await;
    b.fill("#context", "{\"country\": \"BE\"}").await;
    b.click("#try-draft", "#draft-comparison").await;
    let saved = b.text("#saved-result").await;
    let draft = b.text("#draft-result").await;
    assert!(!saved.contains("checkout_fr_notice matched"), "{saved}");
    assert!(draft.contains("checkout_fr_notice"), "{draft}");
    let matched = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("Matched:"))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(matched(&draft).contains("checkout_fr_notice"), "{draft}");
    assert!(!matched(&saved).contains("checkout_fr_notice"), "{saved}");
    let comparison = b
        .client
        .find(Locator::Css("#draft-comparison"))
        .await
        .unwrap()
        .screenshot()
        .await
        .unwrap();
    let comparison_shot = dir.path().join("try-draft.png");
    std::fs::write(&comparison_shot, comparison).unwrap();
    let (_, _, rule) = api(Method::GET, "/v1/rules/checkout_fr_notice", None, vec![]).await;
    assert_eq!(rule["version"], 2, "trying saves nothing");

    // Try an entry point; the sample context is remembered for it.
    b.goto("/admin/try/checkout_terms").await;
    assert_eq!(
        b.value("#context").await,
        "{\"country\": \"BE\"}",
        "remembered"
    );
    b.fill("#context", "{\"country\": \"FR\"}").await;
    b.click("#evaluate", "#try-result").await;
    let result = b.text("#try-result").await;
    assert!(matched(&result).contains("checkout_fr_notice"), "{result}");
    assert!(result.contains("Mentions légales"), "{result}");
    b.goto("/admin/try/checkout_terms").await;
    assert_eq!(b.value("#context").await, "{\"country\": \"FR\"}");

    // History: a diff between two versions, and a rollback with a reason.
    b.goto("/admin/rule/checkout_fr_notice/history").await;
    let history = b.text("#history").await;
    assert!(
        history.contains("legal asked for it") && history.contains("wording"),
        "{history}"
    );
    b.click("#show-diff", "#diff").await;
    let diff = b.text("#diff").await;
    assert!(
        diff.contains("name") && diff.contains("French notice (legal)"),
        "{diff}"
    );
    b.fill("#rollback-reason", "back to the approved name")
        .await;
    b.click("#rollback", "#notice").await;
    assert!(b.text("#notice").await.contains("version 3"));
    assert!(b
        .text("#history")
        .await
        .contains("back to the approved name"));
    let (_, _, rule) = api(Method::GET, "/v1/rules/checkout_fr_notice", None, vec![]).await;
    assert_eq!(
        (rule["version"].as_i64(), rule["name"].as_str()),
        (Some(3), Some("French legal notice"))
    );

    // Operations: clear the cache of one entry point, after a confirmation.
    let stats = |body: &Value| body["counters"]["invalidations_tag"].as_u64().unwrap();
    let (_, _, before) = api(Method::GET, "/v1/cache/stats", None, vec![]).await;
    b.goto("/admin/ops").await;
    assert!(b.text("#health-status").await.contains("ok"));
    assert!(b.has("#feed").await && b.has("#cache-stats").await);
    let radio = b
        .client
        .find(Locator::Css("input[name=scope][value=entry_point]"))
        .await
        .unwrap();
    radio.click().await.unwrap();
    b.fill("#clear-value", "checkout_terms").await;
    b.click("#clear", "#confirm-clear").await;
    assert!(b.text("#confirm-what").await.contains("checkout_terms"));
    let (_, _, unconfirmed) = api(Method::GET, "/v1/cache/stats", None, vec![]).await;
    assert_eq!(
        stats(&unconfirmed),
        stats(&before),
        "nothing cleared before confirming"
    );
    b.click("#confirm-clear", "#notice").await;
    assert!(b.text("#notice").await.contains("Cleared"));
    let (_, _, after) = api(Method::GET, "/v1/cache/stats", None, vec![]).await;
    assert!(stats(&after) > stats(&before), "{before} {after}");

    // A form without the session's CSRF token is refused, and changes nothing.
    let session_id = b.cookie("rulebook_session").await;
    let forged = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let post = |path: &str, cookie: &str, form: Vec<(&str, &str)>| {
        forged
            .post(server.url(path))
            .header("cookie", format!("rulebook_session={cookie}"))
            .form(&form)
            .send()
    };
    let response = post(
        "/admin/rule/checkout_fr_notice/rollback",
        &session_id,
        vec![("csrf", "guessed"), ("version", "1"), ("reason", "forged")],
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 403);
    let (_, _, rule) = api(Method::GET, "/v1/rules/checkout_fr_notice", None, vec![]).await;
    assert_eq!(rule["version"], 3);

    // Sign out: the session ends on the server, so its cookie no longer works anywhere.
    b.goto("/admin").await;
    b.click("#sign-out", "#token").await;
    b.goto("/admin/rules").await;
    assert!(b.has("#token").await, "signed out: the sign-in page");
    let response = forged
        .get(server.url("/admin/rules"))
        .header("cookie", format!("rulebook_session={session_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303, "the old session is gone");

    // A read-only token: no edit controls, and the server refuses its forged edit anyway.
    b.fill("#token", &read_token).await;
    b.click("#sign-in", "#entry-points").await;
    assert!(!b.page().await.contains("New rule"));
    b.goto("/admin/rule/checkout_fr_notice").await;
    assert!(b.has("#read-only").await);
    assert!(!b.has("#save").await && !b.has("#reason").await);
    b.goto("/admin/rule/checkout_fr_notice/history").await;
    assert!(!b.has("#rollback").await);
    b.goto("/admin/ops").await;
    assert!(!b.has("#clear").await);
    let csrf = b.csrf().await;
    let read_session = b.cookie("rulebook_session").await;
    let response = post(
        "/admin/rule/checkout_fr_notice",
        &read_session,
        vec![
            ("csrf", &csrf),
            ("action", "save"),
            ("version", "3"),
            ("entry_point", "checkout_terms"),
            ("name", "defaced"),
            ("priority", "15"),
            ("condition", "true"),
            ("actions", "[]"),
            ("params", "{}"),
            ("reason", "forged"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 403);
    let page = response.text().await.unwrap();
    assert!(
        page.contains("forbidden") || page.contains("role"),
        "{page}"
    );
    let response = post(
        "/admin/rule/checkout_fr_notice/rollback",
        &read_session,
        vec![("csrf", &csrf), ("version", "1"), ("reason", "forged")],
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 403);
    let (_, _, rule) = api(Method::GET, "/v1/rules/checkout_fr_notice", None, vec![]).await;
    assert_eq!(
        (rule["version"].as_i64(), rule["name"].as_str()),
        (Some(3), Some("French legal notice"))
    );

    // Narrow screens (390 px): the same pages, for a look.
    b.client.set_window_size(390, 844).await.unwrap();
    let narrow = std::env::temp_dir().join("rulebook-admin-narrow");
    std::fs::create_dir_all(&narrow).unwrap();
    b.goto("/admin/rules?entry_point=checkout_terms").await;
    std::fs::write(
        narrow.join("narrow-rules.png"),
        b.client.screenshot().await.unwrap(),
    )
    .unwrap();
    b.goto("/admin/rule/checkout_fr_notice").await;
    std::fs::write(
        narrow.join("narrow-editor.png"),
        b.client.screenshot().await.unwrap(),
    )
    .unwrap();

    for shot in [&editor_shot, &list_shot, &comparison_shot] {
        let size = std::fs::metadata(shot).unwrap().len();
        eprintln!("screenshot {} ({size} bytes)", shot.display());
    }
    eprintln!("views 390 px wide in {}", narrow.display());
    b.client.close().await.unwrap();
    drop(driver);
}
