//! Property tests of what `common` reads from the outside: W3C trace context
//! headers and bearer tokens. Random and mutated input must never panic, be
//! misread or get past the checks.
//!
//! `PROPTEST_CASES` sets the number of cases (256 by default here: each is cheap).

use msgen_runtime_common::trace::{TraceContext, TraceState, MAX_STATE_ENTRIES};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

/// The parts of a `tracestate` entry as the standard allows it: key (and system of
/// a tenant's key), value, and spaces around it.
fn entry() -> impl Strategy<Value = (String, Option<String>, String, String)> {
    (
        prop_oneof![
            "[a-z][a-z0-9_*/-]{0,20}".prop_map(|k| (k, None)),
            ("[a-z0-9][a-z0-9_*/-]{0,20}", "[a-z][a-z0-9_*/-]{0,11}")
                .prop_map(|(tenant, system)| (tenant, Some(system))),
        ],
        "[!-+.-<>-~]([ !-+.-<>-~]{0,30}[!-+.-<>-~])?",
        "[ \t]{0,2}",
    )
        .prop_map(|((key, system), value, pad)| (key, system, value, pad))
}

/// Entries of distinct keys: the `n`th key ends in `n`.
fn entries(len: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(entry(), len).prop_map(|parts| {
        parts
            .into_iter()
            .enumerate()
            .map(|(n, (key, system, value, pad))| match system {
                Some(system) => format!("{pad}{key}{n}@{system}={value}{pad}"),
                None => format!("{pad}{key}{n}={value}{pad}"),
            })
            .collect()
    })
}

/// An entry the standard does not allow: no `=`, a key with a character keys may
/// not have (or not starting with a letter or digit, or too long), a value with
/// one values may not have (or empty, or too long).
fn broken_entry() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9]{1,10}",
        (
            "[a-z0-9]{0,5}",
            "[A-Z.:;!#$%&()+<>?\\[\\]^`{|}~\"']",
            "[a-z0-9]{0,5}"
        )
            .prop_map(|(a, bad, b)| format!("{a}{bad}{b}=v")),
        "[_*/@0-9-][a-z0-9]{0,5}=v",
        "[a-z]{1,5}@[0-9_*/-][a-z]{0,5}=v",
        "[a-z]{1,5}@[a-z]{15}=v",
        "[a-z]{1,5}@[a-z]{1,5}@[a-z]{1,5}=v",
        "[a-z][a-z0-9]{256}=v",
        (
            "[!-~&&[^,=]]{0,5}",
            "[=\u{0}-\u{8}\u{a}-\u{1f}\u{7f}-\u{ff}]",
            "[!-~&&[^,=]]{0,5}"
        )
            .prop_map(|(a, bad, b)| format!("k={a}{bad}{b}")),
        Just("k=".to_string()),
        "k=[!-+]{257}",
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_traceparent_reads_back_as_written(trace in 1u128.., span in 1u64.., sampled: bool) {
        let ctx = TraceContext { trace_id: trace, span_id: span, sampled };
        prop_assert_eq!(TraceContext::parse(&ctx.header()), Some(ctx));
        // The standard's optional whitespace around the value is no different.
        prop_assert_eq!(TraceContext::parse(&format!(" \t{} ", ctx.header())), Some(ctx));
    }

    #[test]
    fn a_later_version_is_read_by_its_first_four_fields(
        trace in 1u128.., span in 1u64.., version in 1u8..0xff, rest in "(-[ -~]{0,40})?",
    ) {
        let ctx = TraceContext { trace_id: trace, span_id: span, sampled: true };
        let header = format!("{version:02x}{}{rest}", &ctx.header()[2..]);
        prop_assert_eq!(TraceContext::parse(&header), Some(ctx));
        // Version 00 has exactly four fields.
        let header = format!("{}{rest}", ctx.header());
        prop_assert_eq!(TraceContext::parse(&header).is_some(), rest.trim().is_empty());
    }

    #[test]
    fn any_traceparent_is_read_or_refused_without_panic(header in "\\PC{0,80}") {
        if let Some(ctx) = TraceContext::parse(&header) {
            prop_assert!(ctx.trace_id != 0 && ctx.span_id != 0);
            prop_assert_eq!(TraceContext::parse(&ctx.header()), Some(ctx));
        }
    }

    #[test]
    fn a_valid_tracestate_is_kept_whole_in_order(
        entries in entries(1..=MAX_STATE_ENTRIES),
    ) {
        let fields: Vec<&str> = entries.iter().map(String::as_str).collect();
        let state = TraceState::parse(fields.iter().copied());
        let expected: Vec<&str> = entries.iter().map(|e| e.trim_matches([' ', '\t'])).collect();
        let expected = expected.join(",");
        prop_assert_eq!(state.as_ref().map(TraceState::as_str), Some(expected.as_str()));
        // One field or many: the same list.
        let joined = entries.join(",");
        prop_assert_eq!(TraceState::parse([joined.as_str()]), state);
    }

    #[test]
    fn a_long_or_broken_tracestate_is_dropped_whole(
        entries in entries(0..=MAX_STATE_ENTRIES),
        extra in 1usize..4,
        broken in broken_entry(),
        at in any::<prop::sample::Index>(),
    ) {
        let mut long = entries.clone();
        long.extend((0..MAX_STATE_ENTRIES + extra - entries.len()).map(|i| format!("k{i}=v")));
        prop_assert_eq!(TraceState::parse([long.join(",").as_str()]), None);
        let mut spoiled = entries;
        spoiled.insert(at.index(spoiled.len() + 1), broken);
        prop_assert_eq!(TraceState::parse([spoiled.join(",").as_str()]), None, "{:?}", spoiled);
    }

    #[test]
    fn any_tracestate_is_read_or_refused_without_panic(
        fields in proptest::collection::vec("\\PC{0,60}", 0..4),
    ) {
        if let Some(state) = TraceState::parse(fields.iter().map(String::as_str)) {
            prop_assert!(state.as_str().split(',').count() <= MAX_STATE_ENTRIES);
            let again = TraceState::parse([state.as_str()]);
            prop_assert_eq!(again.as_ref(), Some(&state));
        }
    }
}

/// Tokens exist with the `auth` feature (a project with an auth service).
#[cfg(feature = "auth")]
mod tokens {
    use std::time::Duration;

    use msgen_runtime_common::jwt::{self, Verifier};
    use proptest::prelude::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    proptest! {
        #![proptest_config(super::config())]

        #[test]
        fn a_token_changed_anywhere_is_refused(at in any::<prop::sample::Index>(), to in 0x21u8..0x7f) {
            let token = jwt::issue(SECRET, "42", "ada@example.com", Duration::from_secs(60)).unwrap();
            let verifier = Verifier::new(SECRET);
            // Verified once: the verifier now remembers it, and must tell it from its
            // neighbours all the same.
            prop_assert!(verifier.verify(&token).is_ok());
            let mut bytes = token.clone().into_bytes();
            let i = at.index(bytes.len());
            prop_assume!(bytes[i] != to);
            bytes[i] = to;
            let changed = String::from_utf8(bytes).unwrap();
            prop_assert!(verifier.verify(&changed).is_err(), "{} accepted", changed);
            prop_assert!(jwt::verify(SECRET, &changed).is_err());
        }

        #[test]
        fn a_token_of_another_secret_is_refused(other in "[ -~]{32,48}") {
            prop_assume!(other != SECRET);
            let token = jwt::issue(&other, "42", "ada@example.com", Duration::from_secs(60)).unwrap();
            prop_assert!(Verifier::new(SECRET).verify(&token).is_err());
        }

        #[test]
        fn any_token_is_refused_without_panic(token in "\\PC{0,200}") {
            prop_assert!(Verifier::new(SECRET).verify(&token).is_err());
        }
    }
}
