//! docs/nodepool.md: every YAML block parses (serde_yaml_ng), the image job
//! keeps test-rs's artifacts, the Zuul job asks for the label the nodepool
//! configuration offers, and every xitc command line in it uses options the
//! tool has (its clap definition).

use std::path::Path;

fn page() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/nodepool.md");
    std::fs::read_to_string(path).unwrap()
}

/// The fenced blocks of `language`, in order.
fn blocks(text: &str, language: &str) -> Vec<String> {
    let fence = format!("```{language}\n");
    text.split(fence.as_str())
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap().to_owned())
        .collect()
}

#[test]
fn the_nodepool_page_s_yaml_parses_and_fits_together() {
    let text = page();
    let documents: Vec<serde_yaml_ng::Value> = blocks(&text, "yaml")
        .iter()
        .map(|block| {
            serde_yaml_ng::from_str(block).unwrap_or_else(|error| panic!("{error}:\n{block}"))
        })
        .collect();
    assert_eq!(
        documents.len(),
        4,
        "the image job's playbook, nodepool, the Zuul jobs, the playbook"
    );
    let (image_job, nodepool, jobs, playbook) =
        (&documents[0], &documents[1], &documents[2], &documents[3]);
    let image = image_job[0]["tasks"][0]["command"].as_str().unwrap();
    assert!(
        image.starts_with("test-rs --keep-image --artifacts "),
        "{image}"
    );
    let offered = nodepool["labels"][0]["name"].as_str().unwrap();
    let pool_label = &nodepool["providers"][0]["pools"][0]["labels"][0];
    assert_eq!(pool_label["name"].as_str(), Some(offered));
    assert_eq!(
        pool_label["cloud-image"],
        nodepool["providers"][0]["cloud-images"][0]["name"]
    );
    let asked = jobs[0]["job"]["nodeset"]["nodes"][0]["label"].as_str();
    assert_eq!(asked, Some(offered));
    assert_eq!(
        jobs[1]["job"]["parent"], jobs[0]["job"]["name"],
        "the functional job builds on the base job"
    );
    let wait = playbook[0]["tasks"][0]["command"].as_str().unwrap();
    assert!(wait.starts_with("xitc-wait-until-done "), "{wait}");
}

/// Each `--option` after a tool's name in the page's shell and YAML is one
/// of that tool's options.
#[test]
fn the_nodepool_page_uses_options_the_tools_have() {
    let text = page();
    let mut checked = 0;
    for command in xtask::tools() {
        let name = command.get_name().to_owned();
        let longs: Vec<String> = command
            .get_arguments()
            .filter_map(|argument| argument.get_long().map(|long| format!("--{long}")))
            .collect();
        for (at, _) in text.match_indices(&format!("{name} ")) {
            let line_end = text[at..].find("\n\n").map_or(text.len(), |end| at + end);
            for word in text[at..line_end].split_whitespace() {
                if let Some(option) = word.strip_prefix("--").map(|_| word) {
                    let option = option.trim_end_matches(['`', ',', ')', '.']);
                    if option.len() > 2 && option.chars().nth(2).is_some_and(char::is_alphabetic) {
                        assert!(
                            longs.iter().any(|long| long == option),
                            "{name} has no {option}"
                        );
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(checked >= 3, "only {checked} options found to check");
}
