//! The billing portal over HTTP, as a browser drives it (cookies kept, no redirect
//! followed): sign-in and its session cookie, CSRF tokens on every form, one account never
//! reaching another's pages or documents, sessions that end, the headers that keep pages
//! safe, and figures that agree with the ledger. `tests/portal_browser.rs` drives the same
//! pages in Chromium.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

mod portal_support;

use portal_support::{Browser, Server};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_needs_a_valid_key_and_the_forms_token_and_sets_a_safe_cookie() {
    let server = Server::start("portal-sign-in", 3_600_000).await;
    let a = server.account("Ada GmbH", "10.00", "pay-a").await;
    let mut browser = Browser::new(&server.base);
    // Signed out: every page leads to the sign-in page.
    for path in [
        "/portal",
        "/portal/usage",
        "/portal/invoices",
        "/portal/keys",
        "/portal/usage.csv",
    ] {
        let page = browser.get(path).await;
        assert_eq!((page.status, page.location()), (303, Some("/portal/sign-in")), "{path}");
    }
    let form = browser.get("/portal/sign-in").await;
    let csrf = form.csrf();
    // A form posted without the token its page gave (another site's form): refused.
    let forged = browser
        .post("/portal/sign-in", &[("csrf", &"0".repeat(64)), ("key", &a.key)])
        .await;
    assert_eq!(forged.status, 403);
    let mut stranger = Browser::new(&server.base);
    let no_cookie = stranger
        .post("/portal/sign-in", &[("csrf", &csrf), ("key", &a.key)])
        .await;
    assert_eq!(no_cookie.status, 403, "the token is bound to the pre-session cookie");
    // A wrong key: said so, no session.
    let wrong = browser
        .post("/portal/sign-in", &[("csrf", &csrf), ("key", "sk-paygo-nope")])
        .await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("not valid"));
    assert!(!browser.cookies.contains_key("paygo_session"));
    // The right key: a session cookie, HttpOnly, SameSite=Strict, never the key.
    let signed_in = browser
        .post("/portal/sign-in", &[("csrf", &csrf), ("key", &a.key)])
        .await;
    assert_eq!((signed_in.status, signed_in.location()), (303, Some("/portal")));
    let set = signed_in
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("paygo_session="))
        .unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/portal"),
        "{set}"
    );
    assert!(!set.contains("Secure"), "plain HTTP: not Secure");
    assert!(
        !set.contains(&a.key) && !set.contains(&a.key[9..]),
        "the key is never in the cookie"
    );
    let overview = browser.get("/portal").await;
    assert_eq!(overview.status, 200);
    assert!(overview.body.contains("20,000,000 credits"), "{}", overview.body);
    assert!(overview.body.contains("$10.00"));
    assert!(overview.body.contains("18,000 requests an hour"), "the plan's limit");
    // Behind TLS (a proxy saying so): Secure.
    let mut tls = Browser::new(&server.base);
    tls.forwarded_proto = Some("https");
    let tls_in = tls.sign_in(&a.key).await;
    assert!(
        tls_in
            .set_cookies()
            .iter()
            .any(|c| c.starts_with("paygo_session=") && c.contains("Secure"))
    );
    // A tampered cookie (another account's id, the same MAC): refused.
    let cookie = browser.cookies["paygo_session"].clone();
    let mut forged = Browser::new(&server.base);
    forged
        .cookies
        .insert("paygo_session".into(), format!("2{}", &cookie[1..]));
    assert_eq!(forged.get("/portal").await.status, 303);
    // Signing out ends the session, also for a copy of its cookie.
    let csrf = overview.csrf();
    let out = browser.post("/portal/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!((out.status, out.location()), (303, Some("/portal/sign-in")));
    assert!(!browser.cookies.contains_key("paygo_session"));
    let mut copy = Browser::new(&server.base);
    copy.cookies.insert("paygo_session".into(), cookie);
    assert_eq!(copy.get("/portal").await.status, 303, "a signed-out session is refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_account_never_reaches_anothers_pages_documents_or_keys() {
    let server = Server::start("portal-isolation", 3_600_000).await;
    let a = server.account("Ada GmbH", "10.00", "pay-a").await;
    let b = server.account("Bob AG", "20.00", "pay-b").await;
    let mut browser = Browser::new(&server.base);
    browser.sign_in(&a.key).await;
    let invoices = browser.get("/portal/invoices").await;
    assert!(invoices.body.contains("INV-2026-000001"));
    assert!(!invoices.body.contains("INV-2026-000002"), "B's invoice is not listed");
    let own = browser.get("/portal/invoices/INV-2026-000001").await;
    assert_eq!(own.status, 200);
    assert!(own.body.contains("Ada GmbH"));
    assert!(own.body.contains("Customer number: 1."));
    for path in [
        "/portal/invoices/INV-2026-000002",
        "/portal/invoices/INV-2026-000002/download",
        "/portal/invoices/INV-2026-000099",
        "/portal/invoices/..%2F..%2Fetc",
    ] {
        let page = browser.get(path).await;
        assert_eq!(page.status, 404, "{path}");
        assert!(!page.body.contains("Bob AG"), "{path}");
    }
    // B's key cannot be revoked from A's session (its id is not A's).
    let keys = browser.get("/portal/keys").await;
    assert!(!keys.body.contains(&b.key_id));
    let csrf = keys.csrf();
    let revoke = browser
        .post(&format!("/portal/keys/{}/revoke", b.key_id), &[("csrf", &csrf)])
        .await;
    assert_eq!(revoke.status, 404);
    assert_eq!(server.credits(&b.key).await, 40_000_000, "B's key still works");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_form_needs_its_sessions_token() {
    let server = Server::start("portal-csrf", 3_600_000).await;
    let a = server.account("Ada GmbH", "10.00", "pay-a").await;
    let mut browser = Browser::new(&server.base);
    browser.sign_in(&a.key).await;
    let mut other = Browser::new(&server.base);
    other.sign_in(&a.key).await;
    let other_token = other.get("/portal/keys").await.csrf();
    for (path, fields) in [
        (
            "/portal/auto-top-up",
            vec![
                ("enabled", "on"),
                ("threshold", "5"),
                ("kind", "fixed"),
                ("amount", "20"),
            ],
        ),
        ("/portal/billing-details", vec![("name", "Evil"), ("country", "DE")]),
        ("/portal/keys", vec![("name", "evil")]),
        ("/portal/sign-out", vec![]),
        ("/portal/vat-refund", vec![]),
    ] {
        let page = browser.post(path, &fields).await;
        assert_eq!(page.status, 403, "{path} without a token");
        let mut with_other = fields.clone();
        with_other.push(("csrf", &other_token));
        let page = browser.post(path, &with_other).await;
        assert_eq!(page.status, 403, "{path} with another session's token");
    }
    assert!(
        server
            .proxy
            .directory()
            .account(paygo_billing::CustomerId(a.id))
            .unwrap()
            .auto_top_up
            .is_none()
    );
    assert_eq!(server.proxy.directory().keys(paygo_billing::CustomerId(a.id)).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_end_when_they_expire_or_their_key_is_revoked() {
    let server = Server::start("portal-expiry", 1_500).await;
    let a = server.account("Ada GmbH", "10.00", "pay-a").await;
    let mut browser = Browser::new(&server.base);
    browser.sign_in(&a.key).await;
    assert_eq!(browser.get("/portal").await.status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1_700)).await;
    assert_eq!(browser.get("/portal").await.status, 303, "expired");
    // Revoked through the operator API: the session opened with it ends.
    browser.sign_in(&a.key).await;
    assert_eq!(browser.get("/portal").await.status, 200);
    let response = server
        .http
        .delete(format!("{}/admin/v1/keys/{}", server.base, a.key_id))
        .bearer_auth(portal_support::ADMIN)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    assert_eq!(browser.get("/portal").await.status, 303, "its key was revoked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_escape_what_customers_type_and_carry_a_content_security_policy() {
    let server = Server::start("portal-xss", 3_600_000).await;
    let a = server.account("<script>alert(1)</script>", "10.00", "pay-a").await;
    let mut browser = Browser::new(&server.base);
    browser.sign_in(&a.key).await;
    for path in [
        "/portal",
        "/portal/billing-details",
        "/portal/invoices",
        "/portal/keys",
        "/portal/usage",
        "/portal/auto-top-up",
        "/portal/payment-methods",
    ] {
        let page = browser.get(path).await;
        assert_eq!(page.status, 200, "{path}");
        assert!(!page.body.contains("<script>"), "{path} shows the name as text");
        let csp = page.headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("script-src 'self';") && !csp.contains("unsafe"),
            "{path}: {csp}"
        );
        assert_eq!(page.headers["cache-control"], "no-store");
        assert_eq!(page.headers["x-content-type-options"], "nosniff");
    }
    assert!(
        browser
            .get("/portal")
            .await
            .body
            .contains("&lt;script&gt;alert(1)&lt;/script&gt;")
    );
    let invoice = browser.get("/portal/invoices/INV-2026-000001").await;
    assert!(!invoice.body.contains("<script>alert"));
    assert!(invoice.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    let csp = invoice.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && !csp.contains("script"), "{csp}");
    // A name typed into the details form is kept as typed and shown as text.
    let csrf = browser.get("/portal/billing-details").await.csrf();
    let saved = browser
        .post(
            "/portal/billing-details",
            &[
                ("csrf", &csrf),
                ("name", "\"><img src=x onerror=alert(2)>"),
                ("country", "DE"),
                ("address", "Street 1"),
            ],
        )
        .await;
    assert_eq!(saved.status, 200);
    assert!(!saved.body.contains("<img src=x"));
    assert!(saved.body.contains("&quot;&gt;&lt;img src=x onerror=alert(2)&gt;"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_and_its_csv_add_up_to_what_the_ledger_charged() {
    let server = Server::start("portal-usage", 3_600_000).await;
    let a = server.account("Ada GmbH", "10.00", "pay-a").await;
    let mut charged = 0;
    for model in ["gpt-4o-mini", "gpt-4o", "gpt-4o-mini"] {
        charged += server.call(&a.key, model).await;
    }
    assert_eq!(server.credits(&a.key).await, 20_000_000 - charged);
    let mut browser = Browser::new(&server.base);
    browser.sign_in(&a.key).await;
    let usage = browser.get("/portal/usage").await;
    assert_eq!(usage.status, 200);
    let total = charged.to_string();
    let grouped: String = {
        let digits = total.chars().rev().collect::<Vec<_>>();
        let mut out = Vec::new();
        for (i, c) in digits.iter().enumerate() {
            if i > 0 && i % 3 == 0 {
                out.push(',');
            }
            out.push(*c);
        }
        out.into_iter().rev().collect()
    };
    assert!(
        usage.body.contains(&format!("{grouped} credits")),
        "total {grouped}: {}",
        usage.body
    );
    assert!(usage.body.contains("<svg"), "a chart");
    assert!(usage.body.contains("gpt-4o-mini"));
    let csv = browser.get("/portal/usage.csv").await;
    assert_eq!(csv.status, 200);
    assert!(
        csv.headers["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    let mut lines = csv.body.lines();
    assert_eq!(
        lines.next(),
        Some("date,model,calls,prompt_tokens,completion_tokens,credits,usd")
    );
    let (mut calls, mut credits, mut usd) = (0u64, 0i64, rust_decimal::Decimal::ZERO);
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f.len(), 7, "{line}");
        calls += f[2].parse::<u64>().unwrap();
        credits += f[5].parse::<i64>().unwrap();
        usd += f[6].parse::<rust_decimal::Decimal>().unwrap();
    }
    assert_eq!(
        (calls, credits),
        (3, charged),
        "the CSV adds up to the ledger's charges"
    );
    assert_eq!(
        usd * rust_decimal::Decimal::from(2_000_000),
        rust_decimal::Decimal::from(charged),
        "USD exact"
    );
    // By API key: a second key's calls apart from the first's, each adding up.
    let second = server
        .admin(&format!("/admin/v1/accounts/{}/keys", a.id), json!({}))
        .await["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let by_second = server.call(&second, "gpt-4o-mini").await;
    let by_key = browser.get("/portal/usage?group=key").await;
    assert!(by_key.body.contains("Spend per API key"), "{}", by_key.body);
    let csv = browser.get("/portal/usage.csv?group=key").await;
    let mut lines = csv.body.lines();
    assert_eq!(
        lines.next(),
        Some("date,key_id,calls,prompt_tokens,completion_tokens,credits,usd")
    );
    let mut per_key = std::collections::BTreeMap::new();
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        *per_key.entry(f[1].to_owned()).or_insert(0i64) += f[5].parse::<i64>().unwrap();
    }
    assert_eq!(per_key.get(&a.key_id), Some(&charged));
    assert_eq!(per_key.values().sum::<i64>(), charged + by_second);
    assert_eq!(per_key.len(), 2);
    // A range that is not one: a clear error.
    assert_eq!(browser.get("/portal/usage?from=2026-13-01").await.status, 400);
    assert_eq!(
        browser.get("/portal/usage?from=2026-12-02&to=2026-12-01").await.status,
        400
    );
    assert_eq!(
        browser.get("/portal/usage?from=2020-01-01&to=2026-12-01").await.status,
        400
    );
}

/// A server with one account (Ada `GmbH`, 10 USD paid with German VAT), signed in: the
/// server, the account, its customer id, the browser and a form token.
async fn signed_in(
    name: &str,
) -> (
    Server,
    portal_support::Account,
    paygo_billing::CustomerId,
    Browser,
    String,
) {
    let server = Server::start(name, 3_600_000).await;
    let a = server.account("Ada GmbH", "10.00", "pay-a").await;
    let account = paygo_billing::CustomerId(a.id);
    let mut browser = Browser::new(&server.base);
    browser.sign_in(&a.key).await;
    let csrf = browser.get("/portal/auto-top-up").await.csrf();
    (server, a, account, browser, csrf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_top_up_is_saved_through_the_billing_store() {
    let (server, _a, account, mut browser, csrf) = signed_in("portal-auto").await;
    // Switched on, then off; the rule the directory keeps follows.
    let on = browser
        .post(
            "/portal/auto-top-up",
            &[
                ("csrf", &csrf),
                ("enabled", "on"),
                ("threshold", "5"),
                ("kind", "refill"),
                ("amount", "25"),
                ("cap", "100"),
                ("method", "paypal"),
            ],
        )
        .await;
    assert_eq!(on.status, 200, "{}", on.body);
    let rule = server.proxy.directory().account(account).unwrap().auto_top_up.unwrap();
    assert!(rule.enabled);
    assert_eq!(rule.threshold, paygo_credits::Credits::new(10_000_000));
    assert_eq!(
        rule.amount,
        paygo_billing::TopUpAmount::TargetBalance(paygo_credits::Credits::new(50_000_000))
    );
    let bad = browser
        .post(
            "/portal/auto-top-up",
            &[
                ("csrf", &csrf),
                ("enabled", "on"),
                ("threshold", "5.001"),
                ("amount", "20"),
            ],
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("whole cents"));
    let off = browser
        .post(
            "/portal/auto-top-up",
            &[("csrf", &csrf), ("threshold", "5"), ("kind", "fixed"), ("amount", "20")],
        )
        .await;
    assert_eq!(off.status, 200);
    assert!(
        !server
            .proxy
            .directory()
            .account(account)
            .unwrap()
            .auto_top_up
            .unwrap()
            .enabled
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_made_shown_once_listed_by_their_end_and_revoked() {
    let (server, _a, account, mut browser, csrf) = signed_in("portal-keys").await;
    let made = browser
        .post("/portal/keys", &[("csrf", &csrf), ("name", "production")])
        .await;
    assert_eq!(made.status, 200);
    let at = made.body.find("sk-paygo-").unwrap();
    let secret = made.body[at..at + 73].to_owned();
    assert_eq!(server.credits(&secret).await, 20_000_000, "the new key works");
    let listed = browser.get("/portal/keys").await;
    assert!(listed.body.contains("production"));
    assert!(
        listed
            .body
            .contains(&format!("sk-paygo-…{}", &secret[secret.len() - 4..]))
    );
    assert!(!listed.body.contains(&secret), "never shown again");
    let id = server
        .proxy
        .directory()
        .keys(account)
        .into_iter()
        .find(|k| k.name.as_deref() == Some("production"))
        .unwrap()
        .id;
    let revoked = browser
        .post(&format!("/portal/keys/{}/revoke", id.0), &[("csrf", &csrf)])
        .await;
    assert_eq!(revoked.status, 200);
    assert_eq!(
        server
            .http
            .get(format!("{}/v1/billing/balance", server.base))
            .bearer_auth(&secret)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vat_id_given_after_paying_vat_gets_it_back_by_one_credit_note() {
    let (server, a, account, mut browser, csrf) = signed_in("portal-vat").await;
    // German VAT paid as a consumer; the VAT ID given afterwards.
    let invoice = server.proxy.topups().invoicing().documents().unwrap()[0].clone();
    assert!(
        invoice.totals().vat.amount() > rust_decimal::Decimal::ZERO,
        "a consumer paid VAT"
    );
    let saved = browser
        .post(
            "/portal/billing-details",
            &[
                ("csrf", &csrf),
                ("name", "Ada GmbH"),
                ("country", "DE"),
                ("address", "Street 1\nBerlin"),
                ("vat_id", "DE 136 695 976"),
                ("purchase_order", "PO-77"),
            ],
        )
        .await;
    assert_eq!(saved.status, 200);
    assert!(saved.body.contains("credit note CN-2026-000001"), "{}", saved.body);
    let details = server.proxy.directory().account(account).unwrap();
    assert_eq!(details.vat_id.as_deref(), Some("DE136695976"));
    assert_eq!(details.purchase_order.as_deref(), Some("PO-77"));
    assert_eq!(details.address, vec!["Street 1", "Berlin"]);
    let list = browser.get("/portal/invoices").await;
    assert!(list.body.contains("CN-2026-000001") && list.body.contains("credited by CN-2026-000001"));
    // Every document of the period as one ZIP: the invoice and its credit note, as issued.
    let (status, zip) = browser
        .get_bytes("/portal/invoices.zip?from=2000-01-01&to=2999-12-31")
        .await;
    assert_eq!(status, 200);
    std::fs::write(server.dir.0.join("invoices.zip"), &zip).unwrap();
    let files = unzip(&zip);
    let docs = server.proxy.topups().invoicing().documents().unwrap();
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["INV-2026-000001.html", "CN-2026-000001.html"],
        "in the order issued"
    );
    for ((_, data), doc) in files.iter().zip(&docs) {
        assert!(*data == doc.to_html().into_bytes(), "{} as issued", doc.number());
    }
    let (_, none) = browser
        .get_bytes("/portal/invoices.zip?from=2000-01-01&to=2000-12-31")
        .await;
    assert!(unzip(&none).is_empty());
    // Asked again: the same credit note, no second one.
    let again = browser.post("/portal/vat-refund", &[("csrf", &csrf)]).await;
    assert_eq!(again.status, 200);
    assert_eq!(server.proxy.topups().invoicing().documents().unwrap().len(), 2);
    // A VAT ID that is not one: refused with the reason, nothing saved.
    let wrong = browser
        .post(
            "/portal/billing-details",
            &[
                ("csrf", &csrf),
                ("name", "Ada GmbH"),
                ("country", "DE"),
                ("vat_id", "DE123"),
            ],
        )
        .await;
    assert_eq!(wrong.status, 400);
    assert_eq!(
        server.proxy.directory().account(account).unwrap().vat_id.as_deref(),
        Some("DE136695976")
    );
    // The next payment's invoice carries the purchase order.
    server
        .admin(
            &format!("/admin/v1/accounts/{}/payments", a.id),
            json!({"payment_id": "pay-a2", "usd": "5.00", "method": "card", "card_country": "DE"}),
        )
        .await;
    let docs = server.proxy.topups().invoicing().documents().unwrap();
    assert_eq!(docs.last().unwrap().buyer_reference(), Some("PO-77"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_that_switched_itself_off_says_why() {
    let (server, a, account, mut browser, _csrf) = signed_in("portal-declines").await;
    // A rule that asks below $15 and gives up after one declined payment.
    let rule = paygo_billing::AutoTopUpRule {
        enabled: true,
        threshold: paygo_credits::Credits::new(30_000_000),
        amount: paygo_billing::TopUpAmount::Fixed(paygo_credits::Money::usd("20.00".parse().unwrap())),
        method: paygo_billing::PaymentMethod::Card(paygo_billing::CardKind::Credit),
        requests_per_window_max: 10,
        window_ms: 3_600_000,
        backoff_ms: 1,
        backoff_max_ms: 1,
        monthly_cap: None,
        disable_after_declines: Some(1),
        buyer_tax_id: None,
        purchase_order: None,
    };
    let rule = json!({ "rule": rule });
    let response = server
        .http
        .put(format!("{}/admin/v1/accounts/{}/auto-top-up", server.base, a.id))
        .bearer_auth(portal_support::ADMIN)
        .json(&rule)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.text().await.unwrap());
    server.call(&a.key, "gpt-4o-mini").await;
    let page = browser.get("/portal/auto-top-up").await;
    assert!(page.body.contains("A top-up is being paid now."), "{}", page.body);
    assert!(page.body.contains("Requested this month: $20.00"));
    let requests = paygo_billing::BillingStore::outstanding_requests(server.proxy.gateway().billing())
        .await
        .unwrap();
    let request = requests.iter().find(|r| r.customer == account).unwrap();
    server
        .proxy
        .gateway()
        .report_payment(request.id, paygo_billing::PaymentOutcome::Declined)
        .await
        .unwrap();
    let page = browser.get("/portal/auto-top-up").await;
    assert!(page.body.contains("switched itself off"), "{}", page.body);
    assert!(page.body.contains("after 1 declined payments in a row"));
    let overview = browser.get("/portal").await;
    assert!(
        overview.body.contains("Off."),
        "the overview shows the rule the billing store applies"
    );
    // Saving the form switches it on again.
    let csrf = page.csrf();
    let saved = browser
        .post(
            "/portal/auto-top-up",
            &[
                ("csrf", &csrf),
                ("enabled", "on"),
                ("threshold", "15"),
                ("kind", "fixed"),
                ("amount", "20"),
            ],
        )
        .await;
    assert!(!saved.body.contains("switched itself off"));
    let status = paygo_billing::BillingStore::auto_top_up(server.proxy.gateway().billing(), account)
        .await
        .unwrap();
    assert!(status.rule.unwrap().enabled && status.switched_off.is_none());
}

/// The files of a stored ZIP (names and contents), read through its central directory,
/// every CRC checked.
fn unzip(zip: &[u8]) -> Vec<(String, Vec<u8>)> {
    let u16_at = |i: usize| usize::from(u16::from_le_bytes([zip[i], zip[i + 1]]));
    let u32_at = |i: usize| u32::from_le_bytes([zip[i], zip[i + 1], zip[i + 2], zip[i + 3]]);
    let end = zip.len() - 22;
    assert_eq!(u32_at(end), 0x0605_4b50, "the end record");
    let (count, mut at) = (u16_at(end + 10), u32_at(end + 16) as usize);
    let mut files = Vec::new();
    for _ in 0..count {
        assert_eq!(u32_at(at), 0x0201_4b50, "a central directory entry");
        let (crc, size, name_len) = (u32_at(at + 16), u32_at(at + 20) as usize, u16_at(at + 28));
        let local = u32_at(at + 42) as usize;
        let name = String::from_utf8(zip[at + 46..at + 46 + name_len].to_vec()).unwrap();
        assert_eq!(u32_at(local), 0x0403_4b50, "a local header");
        let data_at = local + 30 + u16_at(local + 26) + u16_at(local + 28);
        let data = zip[data_at..data_at + size].to_vec();
        let mut c = !0u32;
        for b in &data {
            c ^= u32::from(*b);
            for _ in 0..8 {
                c = if c & 1 == 1 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            }
        }
        assert_eq!(!c, crc, "{name}: its CRC");
        files.push((name, data));
        at += 46 + name_len;
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_time_link_from_the_operator_signs_in_once() {
    let server = Server::start("portal-link", 3_600_000).await;
    let a = server.account("Ada GmbH", "10.00", "pay-a").await;
    let made = server
        .admin(&format!("/admin/v1/accounts/{}/portal-link", a.id), json!({}))
        .await;
    let url = made["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with("/portal/link/"));
    assert!(made["expires_at_ns"].as_u64().is_some());
    let mut browser = Browser::new(&server.base);
    // Opening the link (as a mail scanner would) signs nobody in.
    let page = browser.get(&url).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Ada GmbH"));
    assert!(!browser.cookies.contains_key("paygo_session"));
    let csrf = page.csrf();
    let signed_in = browser.post(&url, &[("csrf", &csrf)]).await;
    assert_eq!((signed_in.status, signed_in.location()), (303, Some("/portal")));
    assert_eq!(browser.get("/portal").await.status, 200);
    // Used once: a second use, from anywhere, is refused.
    let mut other = Browser::new(&server.base);
    let page = other.get(&url).await;
    let again = other.post(&url, &[("csrf", &page.csrf())]).await;
    assert_eq!(again.status, 400);
    assert!(again.body.contains("used already"));
    // A link changed by hand (another account's id under the same MAC) is not one.
    let forged = format!("/portal/link/2{}", &url["/portal/link/1".len()..]);
    assert_eq!(other.get(&forged).await.status, 400);
    // Only the operator makes links.
    let response = server
        .http
        .post(format!("{}/admin/v1/accounts/{}/portal-link", server.base, a.id))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vat_id_nobody_confirmed_takes_no_vat_off_and_gives_none_back() {
    // No VIES: a VAT ID the customer types is well formed, and that is all anyone knows.
    let server = Server::start_with("portal-no-vies", 3_600_000, None).await;
    let a = server.account("Ada GmbH", "10.00", "pay-a").await;
    let account = paygo_billing::CustomerId(a.id);
    let mut browser = Browser::new(&server.base);
    browser.sign_in(&a.key).await;
    let csrf = browser.get("/portal/billing-details").await.csrf();
    let saved = browser
        .post(
            "/portal/billing-details",
            &[
                ("csrf", &csrf),
                ("name", "Ada GmbH"),
                ("country", "DE"),
                ("vat_id", "DE136695976"),
            ],
        )
        .await;
    assert_eq!(saved.status, 200);
    assert!(saved.body.contains("not decided yet"), "{}", saved.body);
    assert_eq!(
        server.proxy.topups().invoicing().documents().unwrap().len(),
        1,
        "no credit note"
    );
    assert!(!server.proxy.directory().account(account).unwrap().vat_id_registered);
    // The next payment is charged German VAT: the ID is not confirmed.
    let paid = server
        .admin(
            &format!("/admin/v1/accounts/{}/payments", a.id),
            json!({"payment_id": "pay-a2", "usd": "10.00", "method": "card", "card_country": "DE"}),
        )
        .await;
    let docs = server.proxy.topups().invoicing().documents().unwrap();
    let second = docs
        .iter()
        .find(|d| d.number().to_string() == paid["invoice_number"])
        .unwrap();
    assert_eq!(second.totals().vat, paygo_credits::Money::usd("1.90".parse().unwrap()));
    // The same ID registered by the operator (on an account of its own) is confirmed.
    let created = server
        .admin(
            "/admin/v1/accounts",
            json!({"name": "Reg GmbH", "country": "DE", "vat_id": "DE136695976"}),
        )
        .await;
    assert!(created["account_id"].as_u64().is_some());
    let again = browser.post("/portal/vat-refund", &[("csrf", &csrf)]).await;
    assert!(again.body.contains("approved"), "{}", again.body);
}
