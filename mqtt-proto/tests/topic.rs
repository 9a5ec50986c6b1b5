//! Properties of topic validation and matching, checked on random topics drawn from a small
//! alphabet so that filters and names often coincide and matches actually happen.

use proptest::prelude::*;
use sansmqtt_proto::topic::{
    SharedSubscription, TopicFilter, TopicName, matches, parse_shared, validate_topic_filter,
    validate_topic_name,
};

/// A literal level: few enough choices that two random levels are often equal. The empty level
/// is included on purpose, and `$a` exercises the `$` rule when it lands in the first level.
fn literal_level() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just(""),
        4 => Just("a"),
        4 => Just("b"),
        2 => Just("ab"),
        1 => Just("$a"),
    ]
    .prop_map(String::from)
}

/// The levels of a topic name, at least one.
fn name_levels() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(literal_level(), 1..6)
        // A single empty level would be the empty string, which is not a topic name.
        .prop_filter("topic names are non-empty", |levels| {
            levels.concat().len() + levels.len() > 1
        })
}

/// The levels of a valid topic filter: literals and `+`, then maybe a trailing `#`.
fn filter_levels() -> impl Strategy<Value = Vec<String>> {
    let level = prop_oneof![3 => literal_level(), 1 => Just(String::from("+"))];
    (prop::collection::vec(level, 0..6), any::<bool>())
        .prop_map(|(mut levels, multi_level)| {
            if multi_level {
                levels.push(String::from("#"));
            }
            levels
        })
        .prop_filter("topic filters are non-empty", |levels| {
            !levels.is_empty() && levels.concat().len() + levels.len() > 1
        })
}

/// The levels of a filter without wildcards.
fn exact_filter_levels() -> impl Strategy<Value = Vec<String>> {
    name_levels()
}

/// Matching as the specification words it, one level at a time over level lists.
fn reference_matches(filter: &[String], name: &[String]) -> bool {
    // [MQTT-4.7.2-1]
    let starts_with_wildcard = matches!(filter.first().map(String::as_str), Some("+" | "#"));
    let name_is_dollar = name.first().is_some_and(|level| level.starts_with('$'));
    if starts_with_wildcard && name_is_dollar {
        return false;
    }
    reference_levels(filter, name)
}

fn reference_levels(filter: &[String], name: &[String]) -> bool {
    match (filter.split_first(), name.split_first()) {
        // `#` is the parent level and everything below it, including nothing.
        (Some((first, _)), _) if first == "#" => true,
        (None, None) => true,
        (Some((first, filter_rest)), Some((level, name_rest))) => {
            (first == "+" || first == level) && reference_levels(filter_rest, name_rest)
        }
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn filters_built_from_valid_levels_validate(levels in filter_levels(), group in "[a-z]{1,3}") {
        let filter = levels.join("/");
        prop_assert_eq!(validate_topic_filter(&filter), Ok(()));
        prop_assert!(TopicFilter::new(filter.as_str()).is_ok());
        let shared = format!("$share/{group}/{filter}");
        prop_assert_eq!(
            parse_shared(&shared),
            Ok(Some(SharedSubscription { group: &group, filter: &filter }))
        );
    }

    #[test]
    fn names_built_from_literal_levels_validate(levels in name_levels()) {
        let name = levels.join("/");
        prop_assert_eq!(validate_topic_name(&name), Ok(()));
        prop_assert!(TopicName::new(name.as_str()).is_ok());
    }

    #[test]
    fn matching_agrees_with_the_reference(filter in filter_levels(), name in name_levels()) {
        let expected = reference_matches(&filter, &name);
        let (filter, name) = (filter.join("/"), name.join("/"));
        prop_assert_eq!(matches(&filter, &name), expected, "{} against {}", filter, name);
        let typed = TopicFilter::new(filter.as_str()).expect("generated filter is valid");
        prop_assert_eq!(typed.matches(&name), expected);
        // A shared subscription delivers what its inner filter matches.
        prop_assert_eq!(matches(&format!("$share/g/{filter}"), &name), expected);
    }

    #[test]
    fn differing_literal_level_never_matches(
        mut filter in filter_levels(),
        name in name_levels(),
        depth in any::<prop::sample::Index>(),
    ) {
        // Only levels before a trailing `#` can hold a literal.
        let literal_levels = filter.iter().take_while(|level| *level != "#").count();
        prop_assume!(literal_levels > 0);
        let depth = depth.index(literal_levels.min(name.len()));
        // `z` is outside the generated alphabet, so this level differs from the name's.
        filter[depth] = format!("{}z", name[depth]);
        let (filter, name) = (filter.join("/"), name.join("/"));
        prop_assert!(!matches(&filter, &name), "{} against {}", filter, name);
    }

    #[test]
    fn exact_filter_matches_exactly_itself(filter in exact_filter_levels(), name in name_levels()) {
        let (filter, name) = (filter.join("/"), name.join("/"));
        prop_assert!(matches(&filter, &filter));
        prop_assert_eq!(matches(&filter, &name), filter == name, "{} against {}", filter, name);
    }
}
