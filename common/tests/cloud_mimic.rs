//! The typed compute calls that test-rs builds on, against a real mimic:
//! keypairs, servers, snapshots (images), and their deletion.

use std::time::{Duration, Instant};

use xitc_common::cloud::{CloudClient, CloudConfig, Env, ServerCreate, Timeouts};
use xitc_common::poll::Deadline;
use xitc_test_support::Mimic;

fn client(test: &str) -> CloudClient {
    let mimic = Mimic::shared();
    let user = format!("cloud-{test}");
    let tenant = format!("cloud-tenant-{test}");
    let url = mimic.identity_url();
    let env = Env::from_pairs(
        [
            ("OS_AUTH_URL", url.as_str()),
            ("OS_USERNAME", user.as_str()),
            ("OS_PASSWORD", "pw"),
            ("OS_TENANT_NAME", tenant.as_str()),
            ("OS_REGION_NAME", "ORD"),
        ],
        std::path::Path::new("/"),
    );
    CloudClient::new(CloudConfig::load(&env).unwrap(), Timeouts::default())
}

fn deadline() -> Deadline {
    Deadline::new(Instant::now(), Some(Duration::from_secs(60)))
}

fn spec(name: &str, image: &str) -> ServerCreate {
    ServerCreate {
        name: name.to_owned(),
        image: image.to_owned(),
        flavor: "2".to_owned(),
        key_name: None,
        metadata: std::collections::BTreeMap::new(),
    }
}

#[test]
fn servers_are_created_listed_and_deleted() {
    let client = client("servers");
    let deadline = deadline();
    let id = client
        .create_server(&spec("node-a", "img"), &deadline)
        .unwrap();
    let listed = client.list_servers(Some("node-a"), &deadline).unwrap();
    assert_eq!(
        listed.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        [id.as_str()]
    );
    assert_eq!(client.find_server("node-a", &deadline).unwrap().id, id);
    assert_eq!(client.find_server(&id, &deadline).unwrap().name, "node-a");

    client.delete_server(&id, &deadline).unwrap();
    assert_eq!(client.get_server(&id, &deadline).unwrap(), None);
    assert!(client.list_servers(None, &deadline).unwrap().is_empty());
    // Deleting what is gone is not an error: cleanup may run twice.
    client.delete_server(&id, &deadline).unwrap();
}

#[test]
fn keypairs_are_uploaded_and_deleted() {
    let client = client("keypairs");
    let deadline = deadline();
    let public_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBvqK0zu3S0Yt3mJ1R7w9Ng7x9aE7q test";
    client
        .create_keypair("Jxitck1", public_key, &deadline)
        .unwrap();
    assert_eq!(
        Mimic::shared().keypairs("cloud-tenant-keypairs"),
        ["Jxitck1"]
    );
    let mut with_key = spec("keyed", "img");
    with_key.key_name = Some("Jxitck1".to_owned());
    client.create_server(&with_key, &deadline).unwrap();
    client.delete_keypair("Jxitck1", &deadline).unwrap();
    assert!(Mimic::shared().keypairs("cloud-tenant-keypairs").is_empty());
    client.delete_keypair("Jxitck1", &deadline).unwrap();
}

#[test]
fn snapshots_are_created_found_and_deleted() {
    let client = client("images");
    let deadline = deadline();
    // mimic snapshots only servers booted from one of its own images.
    let base_image = client.list_images(None, &deadline).unwrap()[0].id.clone();
    let server = client
        .create_server(&spec("to-snapshot", &base_image), &deadline)
        .unwrap();

    let image_id = client.create_image(&server, "Jxitci1", &deadline).unwrap();
    let image = client.get_image(&image_id, &deadline).unwrap().unwrap();
    assert_eq!(image.name, "Jxitci1");
    let named: Vec<_> = client
        .list_images(Some("Jxitci1"), &deadline)
        .unwrap()
        .into_iter()
        .filter(|image| image.name == "Jxitci1")
        .collect();
    assert_eq!(named.len(), 1);

    // mimic has no DELETE for Nova's image API (real Nova has); what we can check
    // is that the refusal is an error naming the request, not a silent success.
    let error = client.delete_image(&image_id, &deadline).unwrap_err();
    let message = format!("{error:#}");
    assert!(
        message.starts_with("DELETE /")
            && message.contains(&format!("/images/{image_id}: HTTP 405")),
        "{message}"
    );
}

#[test]
fn a_failed_boot_is_an_error_with_the_api_message() {
    let client = client("boot-failure");
    let mut failing = spec("doomed", "img");
    failing.metadata.insert(
        "create_server_failure".to_owned(),
        r#"{"message": "Quota exceeded", "code": 403}"#.to_owned(),
    );
    let error = client.create_server(&failing, &deadline()).unwrap_err();
    let message = format!("{error:#}");
    assert!(
        message.contains("POST /") && message.contains("/servers: HTTP 403"),
        "{message}"
    );
    assert!(message.contains("Quota exceeded"), "{message}");
}
