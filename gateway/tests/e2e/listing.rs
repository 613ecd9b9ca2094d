use aws_sdk_s3::types::EncodingType;

use crate::harness::{Server, code};

async fn seed(s3: &aws_sdk_s3::Client, bucket: &str, keys: &[&str]) {
    s3.create_bucket().bucket(bucket).send().await.unwrap();
    for k in keys {
        s3.put_object()
            .bucket(bucket)
            .key(*k)
            .body(k.as_bytes().to_vec().into())
            .send()
            .await
            .unwrap();
    }
}

const KEYS: &[&str] = &[
    "photos/2024/jan/a.jpg",
    "photos/2024/jan/b.jpg",
    "photos/2024/feb/c.jpg",
    "photos/2025/d.jpg",
    "photos/e.jpg",
    "readme.md",
    "zeta",
    "with space+plus&amp.txt",
    "ünïcode/ключ",
];

#[tokio::test]
async fn list_v2_prefix_delimiter_and_pages() {
    let server = Server::start();
    let s3 = server.client();
    seed(&s3, "list", KEYS).await;

    let all = s3.list_objects_v2().bucket("list").send().await.unwrap();
    let keys: Vec<&str> = all.contents().iter().filter_map(|o| o.key()).collect();
    let mut sorted: Vec<&str> = KEYS.to_vec();
    sorted.sort(); // bytewise UTF-8 order, as S3 lists
    assert_eq!(keys, sorted);
    assert_eq!(all.key_count(), Some(KEYS.len() as i32));
    assert_eq!(all.is_truncated(), Some(false));
    let first = &all.contents()[0];
    assert_eq!(first.size(), Some(first.key().unwrap().len() as i64));
    assert!(first.e_tag().is_some() && first.last_modified().is_some());
    assert!(first.owner().is_none(), "owner only with fetch-owner");

    let top = s3
        .list_objects_v2()
        .bucket("list")
        .delimiter("/")
        .send()
        .await
        .unwrap();
    let prefixes: Vec<&str> = top
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(prefixes, ["photos/", "ünïcode/"]);
    let keys: Vec<&str> = top.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["readme.md", "with space+plus&amp.txt", "zeta"]);

    let photos = s3
        .list_objects_v2()
        .bucket("list")
        .prefix("photos/")
        .delimiter("/")
        .send()
        .await
        .unwrap();
    let prefixes: Vec<&str> = photos
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(prefixes, ["photos/2024/", "photos/2025/"]);
    assert_eq!(
        photos
            .contents()
            .iter()
            .filter_map(|o| o.key())
            .collect::<Vec<_>>(),
        ["photos/e.jpg"]
    );

    // Pages of two, across common prefixes, with continuation tokens.
    let mut seen = Vec::new();
    let mut token = None;
    loop {
        let page = s3
            .list_objects_v2()
            .bucket("list")
            .delimiter("/")
            .max_keys(2)
            .set_continuation_token(token.clone())
            .fetch_owner(true)
            .send()
            .await
            .unwrap();
        assert!(page.key_count().unwrap() <= 2);
        seen.extend(
            page.common_prefixes()
                .iter()
                .filter_map(|p| p.prefix().map(str::to_string)),
        );
        seen.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string)),
        );
        assert!(page.contents().iter().all(|o| o.owner().is_some()));
        if page.is_truncated() != Some(true) {
            break;
        }
        token = page.next_continuation_token().map(str::to_string);
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            "photos/",
            "readme.md",
            "with space+plus&amp.txt",
            "zeta",
            "ünïcode/"
        ]
    );

    let after = s3
        .list_objects_v2()
        .bucket("list")
        .start_after("readme.md")
        .send()
        .await
        .unwrap();
    assert_eq!(
        after
            .contents()
            .iter()
            .filter_map(|o| o.key())
            .collect::<Vec<_>>(),
        ["with space+plus&amp.txt", "zeta", "ünïcode/ключ"]
    );
    let none = s3
        .list_objects_v2()
        .bucket("list")
        .max_keys(0)
        .send()
        .await
        .unwrap();
    assert_eq!(none.key_count(), Some(0));
    let err = s3
        .list_objects_v2()
        .bucket("list")
        .continuation_token("!!not-a-token!!")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidArgument");
}

#[tokio::test]
async fn url_encoding_and_v1_markers() {
    let server = Server::start();
    let s3 = server.client();
    seed(&s3, "enc", KEYS).await;
    // The Rust SDK hands over the keys as the response carries them: encoded.
    let raw = s3
        .list_objects_v2()
        .bucket("enc")
        .encoding_type(EncodingType::Url)
        .prefix("with")
        .send()
        .await
        .unwrap();
    let key = raw.contents()[0].key().unwrap();
    assert_eq!(
        key, "with%20space%2Bplus%26amp.txt",
        "the key arrives url-encoded"
    );

    let page1 = s3
        .list_objects()
        .bucket("enc")
        .max_keys(3)
        .send()
        .await
        .unwrap();
    assert_eq!(page1.is_truncated(), Some(true));
    let last = page1.contents().last().unwrap().key().unwrap().to_string();
    let page2 = s3
        .list_objects()
        .bucket("enc")
        .marker(&last)
        .send()
        .await
        .unwrap();
    assert_eq!(page1.contents().len() + page2.contents().len(), KEYS.len());
    assert!(
        page2
            .contents()
            .iter()
            .all(|o| o.key().unwrap() > last.as_str())
    );

    let with_delim = s3
        .list_objects()
        .bucket("enc")
        .delimiter("/")
        .max_keys(1)
        .send()
        .await
        .unwrap();
    assert_eq!(with_delim.next_marker(), Some("photos/"));
    let next = s3
        .list_objects()
        .bucket("enc")
        .delimiter("/")
        .marker("photos/")
        .max_keys(1)
        .send()
        .await
        .unwrap();
    assert_eq!(
        next.contents()
            .iter()
            .filter_map(|o| o.key())
            .collect::<Vec<_>>(),
        ["readme.md"]
    );
    assert!(
        next.common_prefixes().is_empty(),
        "a common prefix at the marker is not repeated"
    );

    let versions = s3
        .list_object_versions()
        .bucket("enc")
        .prefix("photos/2024/")
        .send()
        .await
        .unwrap();
    assert_eq!(versions.versions().len(), 3);
    assert!(
        versions
            .versions()
            .iter()
            .all(|v| v.version_id() == Some("null") && v.is_latest() == Some(true))
    );
}
