//! Error responses: every refusal, s3s's own included, is an S3 XML error with a code and a
//! message.

use crate::harness::{Server, code, message, raw_request};

/// The `<Code>` and `<Message>` of an XML error body.
fn code_and_message(xml: &str) -> (String, String) {
    let field = |tag: &str| {
        let open = format!("<{tag}>");
        let start = xml.find(&open).map(|i| i + open.len());
        let end = xml.find(&format!("</{tag}>"));
        match (start, end) {
            (Some(s), Some(e)) if s <= e => xml[s..e].to_string(),
            _ => String::new(),
        }
    };
    (field("Code"), field("Message"))
}

#[tokio::test]
async fn s3s_refusals_are_s3_errors_with_a_message() {
    let server = Server::start();
    let long_key = format!("/bucket/{}", "k".repeat(1100));
    /// A request, and the status and S3 code it is refused with.
    struct Case<'a> {
        method: &'a str,
        target: &'a str,
        headers: &'a [(&'a str, &'a str)],
        status: u16,
        code: &'a str,
    }
    let case = |method, target, headers, status, code| Case {
        method,
        target,
        headers,
        status,
        code,
    };
    let cases = [
        case("GET", "/A_B", &[], 400, "InvalidBucketName"),
        case("PUT", &long_key, &[], 400, "KeyTooLongError"),
        case("PATCH", "/bucket", &[], 501, "NotImplemented"),
        case(
            "GET",
            "/bucket",
            &[("authorization", "AWS4-HMAC-SHA256 garbage")],
            400,
            "InvalidRequest",
        ),
        case(
            "PUT",
            "/bucket/k",
            &[("x-amz-decoded-content-length", "many")],
            400,
            "InvalidRequest",
        ),
    ];
    for Case {
        method,
        target,
        headers,
        status,
        code: want,
    } in cases
    {
        let resp = raw_request(server.addr, method, target, headers, b"").await;
        let what = format!(
            "{method} {}: {}",
            &target[..target.len().min(20)],
            resp.text()
        );
        assert_eq!(resp.status, status, "{what}");
        assert_eq!(
            resp.header("content-type"),
            Some("application/xml"),
            "{what}"
        );
        let (code, message) = code_and_message(&resp.text());
        assert_eq!(code, want, "{what}");
        assert!(!message.is_empty(), "no message: {what}");
    }

    // Through an SDK: a wrong secret is SignatureDoesNotMatch, told in words.
    let wrong = server.client_for(crate::harness::ROOT_AK, "not-the-secret");
    let err = wrong.list_buckets().send().await.unwrap_err();
    assert_eq!(code(&err), "SignatureDoesNotMatch");
    assert!(!message(&err).is_empty());
}
