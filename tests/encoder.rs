//! The real encoder files made by `scripts/setup_encoder.sh` (run by the README's commands).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "tests and benches"
)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use switchyard_learn::embed::{Embed, Encoder, DEFAULT_DIR};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_DIR)
}

fn encoder() -> &'static Encoder {
    static E: OnceLock<Encoder> = OnceLock::new();
    E.get_or_init(|| Encoder::load(&dir(), 1, 1).unwrap_or_else(|e| panic!("{e}")))
}

fn cos(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn sanity_values_match_the_reference_model() {
    let e = encoder();
    assert_eq!(e.dimension(), 384);
    let v = e
        .embed_all(&[
            "A man is eating food.",
            "A man is eating a piece of bread.",
            "The stock market crashed today.",
        ])
        .unwrap();
    for x in &v {
        let norm: f32 = x.iter().map(|a| a * a).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "unit length, got {norm}");
    }
    // Reference (fp32 sentence-transformers): 0.755 and 0.009; int8 stays within 0.03.
    let similar = cos(&v[0], &v[1]);
    let unrelated = cos(&v[0], &v[2]);
    assert!(
        (similar - 0.755).abs() < 0.03,
        "similar pair cosine {similar}"
    );
    assert!(
        (unrelated - 0.009).abs() < 0.05,
        "unrelated pair cosine {unrelated}"
    );
}

#[test]
/// Each text is embedded alone, so a prompt's embedding never depends on its batch.
fn embeddings_do_not_depend_on_the_batch() {
    let e = encoder();
    let texts = [
        "short",
        "a considerably longer sentence with many more tokens in it than the first",
    ];
    let batch = e.embed_all(&texts).unwrap();
    for (i, t) in texts.iter().enumerate() {
        let single = e.embed_all(&[t]).unwrap();
        assert_eq!(batch[i], single[0], "{t}");
    }
}

#[test]
fn long_prompts_are_truncated_to_the_manifest_budget() {
    let e = encoder();
    let long = "word ".repeat(2000);
    assert_eq!(e.token_count(&long), e.manifest.max_tokens);
    assert_eq!(e.embed_all(&[&long]).unwrap()[0].len(), 384);
}

#[test]
fn a_corrupt_model_is_refused_with_the_fix() {
    let tmp = std::env::temp_dir().join(format!("sy-enc-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    for f in [
        "manifest.json",
        "tokenizer.json",
        switchyard_learn::embed::onnx::ORT_LIBRARY,
    ] {
        std::fs::copy(dir().join(f), tmp.join(f)).unwrap();
    }
    std::fs::write(tmp.join("model.onnx"), b"not a model").unwrap();
    let err = Encoder::load(&tmp, 1, 1).err().unwrap().to_string();
    assert!(
        err.contains("corrupt") && err.contains("setup_encoder.sh"),
        "{err}"
    );
    std::fs::remove_dir_all(tmp).ok();
}

/// The static encoder (potion-base-8M) made by `scripts/setup_static_encoder.sh`.
fn static_encoder() -> &'static Encoder {
    static E: OnceLock<Encoder> = OnceLock::new();
    E.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(switchyard_learn::embed::STATIC_DIR);
        Encoder::load(&dir, 1, 1).unwrap_or_else(|e| panic!("{e}"))
    })
}

#[test]
fn static_encoder_matches_the_numpy_reference_of_the_setup_script() {
    let e = static_encoder();
    assert_eq!((e.id(), e.dimension()), ("potion-base-8M", 256));
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(switchyard_learn::embed::STATIC_DIR)
                .join("manifest.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let reference = &manifest["reference"];
    let text = reference["text"].as_str().unwrap();
    assert_eq!(
        e.token_count(text),
        reference["token_ids"].as_array().unwrap().len()
    );
    let v = e.embed(text).unwrap();
    for (i, want) in reference["embedding_head"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let want = want.as_f64().unwrap() as f32;
        assert!((v[i] - want).abs() < 1e-5, "dim {i}: {} vs {want}", v[i]);
    }
    assert!((cos(&v, &v) - 1.0).abs() < 1e-5, "unit length");
    // Related texts are closer than unrelated ones; the same text gives the same bits.
    let [a, b, c] = [
        "A man is eating food.",
        "A man is eating a piece of bread.",
        "The stock market crashed today.",
    ]
    .map(|t| e.embed(t).unwrap());
    assert!(
        cos(&a, &b) > cos(&a, &c) + 0.1,
        "{} vs {}",
        cos(&a, &b),
        cos(&a, &c)
    );
    assert_eq!(e.embed("A man is eating food.").unwrap(), a);
    assert!(e.embed("").unwrap().iter().all(|x| *x == 0.0));
    // The token budget applies.
    assert_eq!(e.token_count(&"word ".repeat(1000)), 256);
}

#[test]
fn a_corrupt_static_model_is_refused_with_its_setup_command() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(switchyard_learn::embed::STATIC_DIR);
    let tmp = std::env::temp_dir().join(format!("sy-static-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    for f in ["manifest.json", "tokenizer.json"] {
        std::fs::copy(src.join(f), tmp.join(f)).unwrap();
    }
    std::fs::write(tmp.join("model.safetensors"), b"not a model").unwrap();
    let err = Encoder::load(&tmp, 1, 1).err().unwrap().to_string();
    assert!(err.contains("is corrupt"), "{err}");
    assert!(err.contains("setup_static_encoder.sh"), "{err}");
    std::fs::remove_dir_all(&tmp).ok();
}

/// The static encoder's fast tokenization path gives the `tokenizers` pipeline's ids: on every
/// 1,000-character window of the vendored RouteLLM files (prompts, answers, judgements) and on
/// texts made to hit its edges (special-token literals, accents, CJK, control and non-ASCII
/// whitespace, words beyond WordPiece's 100 characters, unknown pieces).
#[test]
fn static_fast_tokenization_matches_the_tokenizer() {
    let e = static_encoder();
    let mut texts: Vec<String> = [
        "Hello, World!! What's 2+2? e.g. U.S.A. -- (a) [b] {c} <d> ~`@#$%^&*_=|\\;:'\",./?",
        "[MASK] is special, [mask] is not; x[CLS]y and [SEP][PAD][UNK]",
        "Café naïve résumé Ångström ÉCOLE — “quotes” and ‘single’ …",
        "中文字符 mixed with English 日本語テキスト 한국어",
        "tab\there\nnew line\r\ncarriage\u{b}vertical\u{c}form\u{85}next\u{a0}nbsp\u{2028}sep\u{3000}ideo",
        "null\u{0}byte\u{fffd}replacement\u{200b}zero-width\u{ad}soft-hyphen",
        "emoji 🙂👍🏽 and symbols ∑∫√ ½ ² ™ ©",
        "",
        "   ",
        "supercalifragilisticexpialidocious antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
        "ALLCAPS MiXeD 123abc abc123 3.14159 1,000,000 0x1F 1e-9",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    texts.push("a".repeat(100) + " " + &"b".repeat(101) + " " + &"xq".repeat(60) + "!");
    texts.push("word ".repeat(400));
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/routellm");
    let mut files = vec![];
    for sub in ["mmlu", "gsm8k", "mt_bench"] {
        for entry in std::fs::read_dir(root.join(sub)).unwrap() {
            files.push(entry.unwrap().path());
        }
    }
    files.sort();
    for f in &files {
        let content = std::fs::read_to_string(f).unwrap();
        let chars: Vec<char> = content.chars().collect();
        texts.extend(chars.chunks(1000).map(|c| c.iter().collect::<String>()));
    }
    assert!(texts.len() > 5000, "{} texts", texts.len());
    let failures: Vec<String> = texts
        .iter()
        .filter_map(|t| e.check_tokenization(t).err())
        .take(3)
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
}
