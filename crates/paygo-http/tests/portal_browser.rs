//! The billing portal in a real browser: Chromium (Debian's `chromium` and
//! `chromium-driver`, headless) driven over `WebDriver`. A customer signs in, sees the
//! balance change after a call made through the proxy, sees the usage chart and table agree
//! with the ledger, downloads an invoice and the CSV, switches auto top-up off and sees a
//! call that would have triggered it not trigger it, gives a VAT ID and sees the credit
//! note appear, tries another account's invoice URL, and sees a name with a script tag as
//! text. A screenshot of every page is saved under the target directory
//! (`tmp/portal-screenshots/`). Skipped, with the reason printed, when no browser is
//! installed; `.ci/run` installs one, so CI never skips it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

mod portal_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use paygo_billing::{BillingStore, CustomerId};
use portal_support::{Account, Server};
use serde_json::json;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver, stopped when dropped.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// chromedriver and a headless Chromium session with a fresh profile; `None` (said why)
/// when they are not installed.
async fn browser(profile: &Path) -> Option<(Driver, Client)> {
    for program in [CHROMIUM, CHROMEDRIVER] {
        if !Path::new(program).exists() {
            eprintln!(
                "skipped: {program} is not installed (apt-get install -y chromium chromium-driver; .ci/run does)"
            );
            return None;
        }
    }
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver(child);
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1200,900",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&url)
            .await
        {
            Ok(client) => return Some((driver, client)),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("chromedriver did not start a session within 10 s");
}

struct Shots {
    dir: PathBuf,
}

impl Shots {
    fn new() -> Shots {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("portal-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        Shots { dir }
    }

    async fn take(&self, client: &Client, name: &str) {
        let png = client.screenshot().await.expect("a screenshot");
        std::fs::write(self.dir.join(format!("{name}.png")), png).unwrap();
    }
}

async fn text(client: &Client, css: &str) -> String {
    let found = client.find(Locator::Css(css)).await;
    if let Err(e) = &found {
        let page = client.source().await.unwrap_or_default();
        panic!("{css}: {e}\n{page}");
    }
    found.unwrap().text().await.unwrap()
}

async fn fill(client: &Client, css: &str, value: &str) {
    let field = client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"));
    field.clear().await.unwrap();
    field.send_keys(value).await.unwrap();
}

/// Clicks what `css` finds; when `navigates`, waits for the next page to replace this one
/// (its old root gone stale, the new one loaded).
async fn click_then(client: &Client, css: &str, navigates: bool) {
    let old = client.find(Locator::Css("html")).await.unwrap();
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap();
    if !navigates {
        return;
    }
    for _ in 0..100 {
        if old.is_displayed().await.is_err() {
            let ready = client.execute("return document.readyState;", vec![]).await.unwrap();
            if ready == json!("complete") {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("clicking {css} led to no new page within 5 s");
}

/// Clicks a link or a form's button and waits for the page it leads to.
async fn click(client: &Client, css: &str) {
    click_then(client, css, true).await;
}

/// Credits as the portal writes them.
fn grouped(n: i64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// What the browser's session downloads at `href` (the download links' target, fetched
/// with the browser's session cookie).
async fn download(server: &Server, client: &Client, href: &str) -> (String, String) {
    let cookie = client
        .get_named_cookie("paygo_session")
        .await
        .expect("a session cookie");
    let response = server
        .http
        .get(format!("{}{href}", server.base))
        .header("cookie", format!("paygo_session={}", cookie.value()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{href}");
    let disposition = response.headers()["content-disposition"].to_str().unwrap().to_owned();
    (disposition, response.text().await.unwrap())
}

async fn sign_in(server: &Server, client: &Client, account: &Account) {
    client.goto(&format!("{}/portal", server.base)).await.unwrap();
    assert!(client.current_url().await.unwrap().path().ends_with("/portal/sign-in"));
    fill(client, "#key", &account.key).await;
    click(client, "form button[type=submit]").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::too_many_lines)] // one customer's visit, page by page
async fn a_customer_uses_the_portal_in_a_real_browser() {
    let profile = paygo_testkit::store::TempDir::new("portal-browser-profile");
    let Some((_driver, client)) = browser(&profile.0).await else {
        return;
    };
    let shots = Shots::new();
    let server = Server::start("portal-browser", 3_600_000).await;
    // The account's name is a script: it must show as text, never run.
    let a = server.account("<script>alert(1)</script>", "10.00", "pay-a").await;
    let b = server.account("Bob AG", "20.00", "pay-b").await;
    let account = CustomerId(a.id);

    sign_in(&server, &client, &a).await;
    shots.take(&client, "sign-in-done").await;
    assert_eq!(client.current_url().await.unwrap().path(), "/portal");
    assert!(client.get_alert_text().await.is_err(), "no script ran");
    assert_eq!(text(&client, ".who").await, "<script>alert(1)</script> · account 1");
    assert_eq!(
        text(&client, "[data-testid=balance-credits]").await,
        "20,000,000 credits"
    );
    assert_eq!(text(&client, "[data-testid=balance-usd]").await, "$10.00");

    // A call through the proxy: the overview shows the new balance, exactly the ledger's.
    let charged = server.call(&a.key, "gpt-4o-mini").await;
    let ledger = server
        .proxy
        .gateway()
        .billing()
        .balance(account)
        .await
        .unwrap()
        .available
        .get();
    assert_eq!(ledger, 20_000_000 - charged);
    client.refresh().await.unwrap();
    assert_eq!(
        text(&client, "[data-testid=balance-credits]").await,
        format!("{} credits", grouped(ledger))
    );
    shots.take(&client, "overview").await;

    // Usage: the chart has a bar for the day, and the tables agree with the ledger.
    click(&client, "nav a[href='/portal/usage']").await;
    assert_eq!(
        text(&client, "[data-testid=usage-total-credits]").await,
        format!("{} credits", grouped(charged))
    );
    assert_eq!(text(&client, "[data-testid=usage-calls]").await, "1");
    let model_row = text(&client, "#usage-models tbody tr").await;
    assert!(model_row.starts_with("gpt-4o-mini 1 "), "{model_row}");
    assert!(model_row.contains(&grouped(charged)), "{model_row}");
    let bars = client.find_all(Locator::Css("svg.chart rect.bar")).await.unwrap();
    assert!(bars.len() >= 30, "a bar for every day of the range: {}", bars.len());
    shots.take(&client, "usage").await;
    let csv_href = client
        .find(Locator::Css("a[download][href^='/portal/usage.csv']"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    let (disposition, csv) = download(&server, &client, &csv_href).await;
    assert!(disposition.starts_with("attachment"));
    let row: Vec<String> = csv.lines().nth(1).unwrap().split(',').map(str::to_owned).collect();
    assert_eq!(row[1], "gpt-4o-mini");
    assert_eq!(
        row[5].parse::<i64>().unwrap(),
        charged,
        "the CSV's credits are the ledger's"
    );
    assert_eq!(
        row[6].parse::<rust_decimal::Decimal>().unwrap() * rust_decimal::Decimal::from(2_000_000),
        rust_decimal::Decimal::from(charged)
    );

    // Invoices: listed, viewed, downloaded; the same document the invoicing book holds.
    click(&client, "nav a[href='/portal/invoices']").await;
    assert_eq!(text(&client, "#invoices tbody tr th").await, "INV-2026-000001");
    shots.take(&client, "invoices").await;
    let (disposition, html) = download(&server, &client, "/portal/invoices/INV-2026-000001/download").await;
    assert!(disposition.contains("INV-2026-000001.html"));
    let book = server.proxy.topups().invoicing().documents().unwrap();
    let invoice = book
        .iter()
        .find(|d| d.number().to_string() == "INV-2026-000001")
        .unwrap();
    assert_eq!(html, invoice.to_html(), "the download is the invoice as issued");
    click(&client, "#invoices tbody tr th a").await;
    assert!(client.source().await.unwrap().contains("INV-2026-000001"));
    shots.take(&client, "invoice").await;

    // Another account's invoice, by its URL: not found, nothing of it shown.
    client
        .goto(&format!("{}/portal/invoices/INV-2026-000002", server.base))
        .await
        .unwrap();
    assert_eq!(text(&client, "h1").await, "Not found");
    assert!(!client.source().await.unwrap().contains("Bob AG"));
    drop(b);

    // Auto top-up: switched on with a threshold above the balance, then off; a call that
    // would trigger it then triggers nothing.
    client
        .goto(&format!("{}/portal/auto-top-up", server.base))
        .await
        .unwrap();
    fill(&client, "#threshold", "50").await;
    fill(&client, "#amount", "20").await;
    if !client
        .find(Locator::Css("#enabled"))
        .await
        .unwrap()
        .is_selected()
        .await
        .unwrap()
    {
        click_then(&client, "#enabled", false).await;
    }
    click(&client, "main form button[type=submit]").await;
    assert!(text(&client, "p.notice").await.contains("auto top-up is on"));
    shots.take(&client, "auto-top-up").await;
    click_then(&client, "#enabled", false).await;
    click(&client, "main form button[type=submit]").await;
    assert!(text(&client, "p.notice").await.contains("auto top-up is off"));
    server.call(&a.key, "gpt-4o-mini").await;
    let requests = server.proxy.gateway().billing().outstanding_requests().await.unwrap();
    assert!(
        requests.iter().all(|r| r.customer != account),
        "switched off: no top-up asked for"
    );
    // And switched on again, the next call does ask for one (the switch is what stopped it).
    click_then(&client, "#enabled", false).await;
    click(&client, "main form button[type=submit]").await;
    server.call(&a.key, "gpt-4o-mini").await;
    let requests = server.proxy.gateway().billing().outstanding_requests().await.unwrap();
    assert_eq!(requests.iter().filter(|r| r.customer == account).count(), 1);

    // Billing details: a VAT ID after paying German VAT; the credit note appears.
    click(&client, "nav a[href='/portal/billing-details']").await;
    fill(&client, "#name", "Ada GmbH").await;
    // Checked as it is typed: a wrong one is said to be wrong before the form is sent.
    fill(&client, "#vat_id", "DE123").await;
    let mut said = String::new();
    for _ in 0..50 {
        said = text(&client, "#vat-state").await;
        if said.starts_with("DE123:") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(said.starts_with("DE123:"), "the VAT ID is checked as typed: {said}");
    shots.take(&client, "vat-id-typed").await;
    fill(&client, "#vat_id", "DE136695976").await;
    for _ in 0..50 {
        said = text(&client, "#vat-state").await;
        if said.contains("confirmed") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(said, "DE136695976: well formed and confirmed by VIES.");
    fill(&client, "#purchase_order", "PO-2026-7").await;
    click(&client, "main form button[type=submit]").await;
    let notices = client.find_all(Locator::Css("p.notice")).await.unwrap();
    let mut said = String::new();
    for n in notices {
        said.push_str(&n.text().await.unwrap());
    }
    assert!(said.contains("credit note CN-2026-000001"), "{said}");
    shots.take(&client, "billing-details").await;
    click(&client, "nav a[href='/portal/invoices']").await;
    assert!(client.source().await.unwrap().contains("credited by CN-2026-000001"));
    shots.take(&client, "invoices-credited").await;

    // Payment methods and API keys.
    click(&client, "nav a[href='/portal/payment-methods']").await;
    assert!(client.source().await.unwrap().contains("Prepaid cards"));
    shots.take(&client, "payment-methods").await;
    click(&client, "nav a[href='/portal/keys']").await;
    fill(&client, "#key-name", "production").await;
    click(&client, "main form[action='/portal/keys'] button").await;
    let secret = text(&client, "[data-testid=new-key]").await;
    assert!(secret.starts_with("sk-paygo-"));
    assert_eq!(
        server.credits(&secret).await,
        server.credits(&a.key).await,
        "the new key works"
    );
    shots.take(&client, "keys").await;

    // Keyboard: the skip link is the first thing Tab reaches.
    client.goto(&format!("{}/portal", server.base)).await.unwrap();
    let active = client
        .execute(
            "document.body.focus(); return document.querySelector('a.skip').getAttribute('href');",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(active, json!("#main"));

    // Sign out: back to the sign-in page, the portal closed.
    click(&client, "header form button").await;
    assert!(client.current_url().await.unwrap().path().ends_with("/portal/sign-in"));
    client.goto(&format!("{}/portal/usage", server.base)).await.unwrap();
    assert!(client.current_url().await.unwrap().path().ends_with("/portal/sign-in"));
    shots.take(&client, "signed-out").await;
    client.close().await.unwrap();
    eprintln!("screenshots in {}", shots.dir.display());
}
