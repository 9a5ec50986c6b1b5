//! Topic names, topic filters, shared subscriptions and matching (MQTT 3.1.1 §4.7, MQTT 5.0 §4.7
//! and §4.8.2).
//!
//! A *topic name* is what a PUBLISH is sent to; a *topic filter* is what a SUBSCRIBE asks for and
//! may use the wildcards `+` (exactly one level) and `#` (the parent level and any number of child
//! levels). [`TopicName`] and [`TopicFilter`] are validated at construction, so code holding one
//! never needs to check it again.
//!
//! ```
//! use sansmqtt_proto::topic::{matches, TopicFilter, TopicName};
//!
//! let filter = TopicFilter::new("sport/tennis/+/ranking").unwrap();
//! let name = TopicName::new("sport/tennis/player1/ranking").unwrap();
//! assert!(filter.matches(&name));
//! assert!(matches("sport/#", "sport"));
//! assert!(!matches("#", "$SYS/uptime"));
//! assert!(TopicName::new("sport/+").is_err());
//! ```
//!
//! Spec references name the MQTT 3.1.1 statement first and the MQTT 5.0 one second where the
//! two versions number the same rule differently.

use alloc::string::String;
use core::borrow::Borrow;
use core::fmt;
use core::ops::Deref;

use bytestring::ByteString;

use crate::codec::zero_byte_mask;

/// The longest topic name or filter, in bytes, that fits an MQTT UTF-8 string (65535).
pub const MAX_TOPIC_LEN: usize = 65_535;

/// Separates the levels of a topic name or filter.
const LEVEL_SEPARATOR: char = '/';
/// Matches exactly one level of a topic name.
const SINGLE_LEVEL_WILDCARD: &str = "+";
/// Matches the parent level and any number of child levels.
const MULTI_LEVEL_WILDCARD: &str = "#";
/// Both wildcard characters, for scanning.
const WILDCARDS: [char; 2] = ['+', '#'];
/// Introduces an MQTT 5.0 shared subscription filter, `$share/{ShareName}/{filter}`.
const SHARE_PREFIX: &str = "$share/";

/// Why a topic name, topic filter or shared subscription filter is not valid.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TopicError {
    /// The topic is the empty string.
    #[error("a topic must be at least one character long")]
    Empty,
    /// The topic encodes to more than [`MAX_TOPIC_LEN`] bytes of UTF-8.
    #[error("a topic must not be longer than 65535 bytes")]
    TooLong,
    /// The topic contains the null character U+0000.
    #[error("a topic must not contain the null character U+0000")]
    NullCharacter,
    /// A topic name contains `+` or `#`, which only topic filters may use.
    #[error("a topic name must not contain the wildcard characters `+` or `#`")]
    WildcardInTopicName,
    /// A `#` in a topic filter is not alone in its level, or its level is not the last one.
    #[error("the multi-level wildcard `#` must occupy the last level of a topic filter on its own")]
    InvalidMultiLevelWildcard,
    /// A `+` in a topic filter shares its level with other characters.
    #[error("the single-level wildcard `+` must occupy an entire level of a topic filter")]
    InvalidSingleLevelWildcard,
    /// A filter starting with `$share/` is not a well-formed shared subscription.
    #[error("invalid shared subscription")]
    InvalidSharedSubscription(#[from] SharedSubscriptionError),
}

/// What is wrong with a filter that starts with `$share/` (MQTT 5.0 §4.8.2).
///
/// A ShareName ends at the first `/` after `$share/`, so it can never contain `/` itself:
/// `$share/a/b/c` is the group `a` sharing the filter `b/c`.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SharedSubscriptionError {
    /// Nothing between `$share/` and the next `/`.
    #[error("the ShareName must be at least one character long")]
    EmptyShareName,
    /// The ShareName contains `+` or `#`.
    #[error("the ShareName must not contain `+` or `#`")]
    WildcardInShareName,
    /// The ShareName is not followed by `/` and a non-empty topic filter.
    #[error("the ShareName must be followed by `/` and a topic filter")]
    MissingFilter,
    /// A ShareName given on its own (to build a filter) contains `/`: it would end the name
    /// there and move the rest into the filter. Parsing never reports it.
    #[error("the ShareName must not contain `/`")]
    SeparatorInShareName,
}

/// The parts of an MQTT 5.0 shared subscription filter, `$share/{group}/{filter}`, borrowed from
/// the full filter string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SharedSubscription<'a> {
    /// The ShareName: subscribers using the same one share the messages between them.
    pub group: &'a str,
    /// The topic filter that messages are matched against, as for an ordinary subscription.
    pub filter: &'a str,
}

/// Checks the rules every topic name and topic filter share; returns the [`scan`] flags.
fn validate_common(topic: &str) -> Result<u8, TopicError> {
    // [MQTT-4.7.3-1]
    if topic.is_empty() {
        return Err(TopicError::Empty);
    }
    // [MQTT-4.7.3-3]: the length has to fit the two-byte prefix of an MQTT string.
    if topic.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong);
    }
    // [MQTT-4.7.3-2]
    let flags = scan(topic.as_bytes());
    if flags & NUL != 0 {
        return Err(TopicError::NullCharacter);
    }
    Ok(flags)
}

/// [`scan`] bit: the bytes contain U+0000.
pub(crate) const NUL: u8 = 1;
/// [`scan`] bit: the bytes contain `+` or `#`.
pub(crate) const WILDCARD: u8 = 2;

/// Which of [`NUL`] and [`WILDCARD`] occur in `bytes`, in one pass over eight bytes at a time
/// (topics are short: this beats a `memchr` call per character class). Byte tests are exact
/// for these ASCII characters: in UTF-8 their bytes never occur inside another character.
#[inline]
pub(crate) fn scan(bytes: &[u8]) -> u8 {
    let Some(last) = bytes.last_chunk::<8>() else {
        return bytes.iter().fold(0, |flags, &byte| {
            flags | u8::from(byte == 0) | (u8::from(byte == b'+' || byte == b'#') << 1)
        });
    };
    // Per-word masks are OR-ed and tested once at the end: a mask is non-zero exactly when
    // its word holds the byte (see `zero_byte_mask`), so the OR is exact too.
    let (mut nul, mut wildcard) = (0, 0);
    let mut add = |word: &[u8; 8]| {
        let word = u64::from_ne_bytes(*word);
        nul |= zero_byte_mask(word);
        // `#` (0x23) and `+` (0x2B) differ only in bit 3, and no other byte becomes `+` when
        // that bit is set, so one comparison finds both.
        wildcard |= zero_byte_mask((word | EIGHTS) ^ PLUSES);
    };
    let (words, tail) = bytes.as_chunks::<8>();
    for word in words {
        add(word);
    }
    // The last eight bytes cover the tail the whole words leave; re-reading some is harmless.
    // (A plain loop and a separate tail: chaining the tail onto the words' iterator cost
    // three times as many instructions per topic.)
    if !tail.is_empty() {
        add(last);
    }
    u8::from(nul != 0) | (u8::from(wildcard != 0) << 1)
}

/// Bit 3 set in every byte.
const EIGHTS: u64 = u64::from_ne_bytes([0x08; 8]);
/// `+` in every byte.
const PLUSES: u64 = u64::from_ne_bytes([b'+'; 8]);

/// Checks where the wildcards of a filter stand; the filter must not be a shared one.
fn validate_filter_levels(filter: &str) -> Result<(), TopicError> {
    // On bytes: the separator and wildcards are ASCII, so this splits where `str::split` would.
    let mut levels = filter.as_bytes().split(|&byte| byte == b'/').peekable();
    while let Some(level) = levels.next() {
        if level.contains(&b'#') {
            // [MQTT-4.7.1-2] (3.1.1) / [MQTT-4.7.1-1] (5.0): anything after `#` could never
            // be matched, so the spec forbids it rather than ignoring it.
            if level != MULTI_LEVEL_WILDCARD.as_bytes() || levels.peek().is_some() {
                return Err(TopicError::InvalidMultiLevelWildcard);
            }
        } else if level.contains(&b'+') && level != SINGLE_LEVEL_WILDCARD.as_bytes() {
            // [MQTT-4.7.1-3] (3.1.1) / [MQTT-4.7.1-2] (5.0)
            return Err(TopicError::InvalidSingleLevelWildcard);
        }
    }
    Ok(())
}

/// Splits `$share/{group}/{filter}` into its group and filter without checking either; the
/// filter is empty when nothing follows the group.
fn split_shared(filter: &str) -> Option<(&str, &str)> {
    let rest = filter.strip_prefix(SHARE_PREFIX)?;
    Some(rest.split_once(LEVEL_SEPARATOR).unwrap_or((rest, "")))
}

/// Checks that `name` may be used as the topic of a PUBLISH.
///
/// # Errors
///
/// [`TopicError::Empty`], [`TopicError::TooLong`], [`TopicError::NullCharacter`] or
/// [`TopicError::WildcardInTopicName`].
pub fn validate_topic_name(name: &str) -> Result<(), TopicError> {
    let flags = validate_common(name)?;
    // [MQTT-4.7.1-1] (3.1.1) / [MQTT-4.7.0-1] (5.0): a name is what filters are matched
    // against, so a wildcard in it would be ambiguous.
    if flags & WILDCARD != 0 {
        return Err(TopicError::WildcardInTopicName);
    }
    Ok(())
}

/// Checks that `filter` may be subscribed to. A `$share/{group}/{filter}` filter must be a
/// well-formed shared subscription whose inner filter is valid.
///
/// # Errors
///
/// Any [`TopicError`] but [`TopicError::WildcardInTopicName`].
pub fn validate_topic_filter(filter: &str) -> Result<(), TopicError> {
    parse_shared(filter)?;
    Ok(())
}

/// Validates `filter` and, when it is an MQTT 5.0 shared subscription
/// (`$share/{ShareName}/{filter}`), returns its group and inner filter. Returns `Ok(None)` for a
/// valid ordinary filter.
///
/// # Errors
///
/// Whatever [`validate_topic_filter`] reports for the same filter.
pub fn parse_shared(filter: &str) -> Result<Option<SharedSubscription<'_>>, TopicError> {
    // The length and U+0000 limits apply to the string as sent, prefix included.
    let flags = validate_common(filter)?;
    // Without any wildcard character, no level can misplace one (and neither can the inner
    // filter of a shared subscription, a part of `filter`).
    let has_wildcard = flags & WILDCARD != 0;
    let Some((group, inner)) = split_shared(filter) else {
        if has_wildcard {
            validate_filter_levels(filter)?;
        }
        return Ok(None);
    };
    // [MQTT-4.8.2-1]
    if group.is_empty() {
        return Err(SharedSubscriptionError::EmptyShareName.into());
    }
    // [MQTT-4.8.2-2]: a wildcard in the group name would be confused with one in the filter.
    if group.contains(WILDCARDS) {
        return Err(SharedSubscriptionError::WildcardInShareName.into());
    }
    // [MQTT-4.8.2-2]
    if inner.is_empty() {
        return Err(SharedSubscriptionError::MissingFilter.into());
    }
    if has_wildcard {
        validate_filter_levels(inner)?;
    }
    Ok(Some(SharedSubscription {
        group,
        filter: inner,
    }))
}

/// Tells whether a message published to the topic `name` is delivered to a subscription on
/// `filter`. A `$share/{group}/{filter}` filter matches as its inner filter.
///
/// Both arguments are expected to be valid (see [`validate_topic_filter`] and
/// [`validate_topic_name`]); for invalid ones the answer is unspecified, but this never panics.
/// It does not allocate.
#[must_use]
pub fn matches(filter: &str, name: &str) -> bool {
    let filter = match split_shared(filter) {
        Some((_, "")) => return false,
        Some((_, inner)) => inner,
        None => filter,
    };
    // [MQTT-4.7.2-1]: `$` topics carry server-specific data (such as `$SYS/`) that a catch-all
    // subscription must not pick up by accident; naming the `$` level explicitly still works.
    if name.starts_with('$') && filter.starts_with(WILDCARDS) {
        return false;
    }
    let mut filter_levels = filter.split(LEVEL_SEPARATOR);
    let mut name_levels = name.split(LEVEL_SEPARATOR);
    loop {
        match (filter_levels.next(), name_levels.next()) {
            // `#` also matches when the name has run out: it stands for the parent level too.
            (Some(MULTI_LEVEL_WILDCARD), _) => return true,
            // Any level, even an empty one, is exactly one level.
            (Some(SINGLE_LEVEL_WILDCARD), Some(_)) => {}
            (Some(wanted), Some(level)) if wanted == level => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Implements the string-like traits both validated topic types share.
macro_rules! topic_string_type {
    ($ty:ident) => {
        impl $ty {
            /// Returns the topic as a string slice.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Returns the underlying [`ByteString`], without copying.
            #[must_use]
            pub fn into_inner(self) -> ByteString {
                self.0
            }
        }

        impl Deref for $ty {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        // Sound because the derived `Hash`, `Eq` and `Ord` defer to `ByteString`, whose own
        // are those of `str`.
        impl Borrow<str> for $ty {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $ty {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $ty {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl TryFrom<&str> for $ty {
            type Error = TopicError;

            fn try_from(value: &str) -> Result<Self, TopicError> {
                Self::new(value)
            }
        }

        impl TryFrom<String> for $ty {
            type Error = TopicError;

            fn try_from(value: String) -> Result<Self, TopicError> {
                Self::new(value)
            }
        }

        impl TryFrom<ByteString> for $ty {
            type Error = TopicError;

            fn try_from(value: ByteString) -> Result<Self, TopicError> {
                Self::new(value)
            }
        }

        impl From<$ty> for ByteString {
            fn from(value: $ty) -> Self {
                value.0
            }
        }
    };
}

/// A valid topic name: the topic a message is published to. Cheap to clone.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicName(ByteString);

impl TopicName {
    /// Validates `name` with [`validate_topic_name`] and wraps it.
    ///
    /// # Errors
    ///
    /// The [`TopicError`] saying why `name` is not a valid topic name.
    pub fn new(name: impl Into<ByteString>) -> Result<Self, TopicError> {
        let name = name.into();
        validate_topic_name(&name)?;
        Ok(Self(name))
    }
}

topic_string_type!(TopicName);

/// A valid topic filter: what a subscription asks for, possibly with wildcards or as an MQTT 5.0
/// shared subscription. Cheap to clone.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicFilter(ByteString);

impl TopicFilter {
    /// Validates `filter` with [`validate_topic_filter`] and wraps it.
    ///
    /// # Errors
    ///
    /// The [`TopicError`] saying why `filter` is not a valid topic filter.
    pub fn new(filter: impl Into<ByteString>) -> Result<Self, TopicError> {
        let filter = filter.into();
        validate_topic_filter(&filter)?;
        Ok(Self(filter))
    }

    /// Tells whether a message published to `name` is delivered to this subscription; see
    /// [`matches()`].
    #[must_use]
    pub fn matches(&self, name: &str) -> bool {
        matches(&self.0, name)
    }

    /// Tells whether the filter uses `+` or `#`, that is, whether it can match more than one
    /// topic name.
    #[must_use]
    pub fn is_wildcard(&self) -> bool {
        // A valid ShareName holds no wildcard, so any one found belongs to the filter proper.
        self.0.contains(WILDCARDS)
    }

    /// Returns the group and inner filter when this is an MQTT 5.0 shared subscription.
    #[must_use]
    pub fn shared(&self) -> Option<SharedSubscription<'_>> {
        // Construction validated the filter, so only the split is left to do.
        split_shared(&self.0).map(|(group, filter)| SharedSubscription { group, filter })
    }
}

topic_string_type!(TopicFilter);

/// A topic name or filter given as a string: `&str`, `String`, `&String`, [`ByteString`],
/// `&ByteString`, [`TopicName`], [`TopicFilter`], `Box<str>` or `Cow<str>`. Owned strings are
/// taken without a copy; borrowed ones are copied once. Validation happens where the string
/// is used (publish, subscribe), not here.
///
/// It exists because `ByteString` (the zero-copy string every packet holds) cannot be built
/// `From<&String>`, so `impl Into<ByteString>` would make `client.publish(&topic, ..)` a compile
/// error for a `topic: String`.
pub trait IntoTopic {
    /// The string, as the packets hold it.
    fn into_topic(self) -> ByteString;
}

macro_rules! into_topic {
    ($($ty:ty),* $(,)?) => {
        $(impl IntoTopic for $ty {
            fn into_topic(self) -> ByteString {
                ByteString::from(self)
            }
        })*
    };
}

into_topic!(
    &str,
    String,
    ByteString,
    alloc::boxed::Box<str>,
    TopicName,
    TopicFilter
);

impl IntoTopic for &String {
    fn into_topic(self) -> ByteString {
        ByteString::from(self.as_str())
    }
}

impl IntoTopic for &ByteString {
    fn into_topic(self) -> ByteString {
        self.clone()
    }
}

impl IntoTopic for alloc::borrow::Cow<'_, str> {
    fn into_topic(self) -> ByteString {
        match self {
            alloc::borrow::Cow::Borrowed(s) => ByteString::from(s),
            alloc::borrow::Cow::Owned(s) => ByteString::from(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeSet;
    use alloc::string::ToString;
    use alloc::vec::Vec;

    fn filter(filter: &str) -> TopicFilter {
        TopicFilter::new(filter).expect("test filter is valid")
    }

    // ---- MQTT 3.1.1 §4.7.1.2 / MQTT 5.0 §4.7.1.2: multi-level wildcard ----

    #[test]
    fn multi_level_wildcard_matches_parent_and_all_child_levels() {
        let f = "sport/tennis/player1/#";
        assert!(matches(f, "sport/tennis/player1"));
        assert!(matches(f, "sport/tennis/player1/ranking"));
        assert!(matches(f, "sport/tennis/player1/score/wimbledon"));
    }

    #[test]
    fn multi_level_wildcard_matches_the_parent_level_alone() {
        assert!(matches("sport/#", "sport"));
    }

    #[test]
    fn multi_level_wildcard_matches_an_empty_child_level() {
        assert!(matches("sport/tennis/player1/#", "sport/tennis/player1/"));
        assert!(matches("sport/#", "sport/"));
    }

    #[test]
    fn multi_level_wildcard_does_not_match_a_different_parent() {
        assert!(!matches("sport/tennis/player1/#", "sport/tennis/player2"));
        assert!(!matches("sport/tennis/player1/#", "sport/tennis"));
        assert!(!matches("sport/#", "sports"));
    }

    #[test]
    fn multi_level_wildcard_alone_matches_every_topic() {
        for name in ["sport", "sport/tennis/player1", "/finance", "/", "a//b"] {
            assert!(matches("#", name), "{name}");
        }
    }

    #[test]
    fn multi_level_wildcard_alone_or_after_separator_is_valid() {
        for f in ["#", "sport/tennis/#", "/#", "+/#"] {
            assert_eq!(validate_topic_filter(f), Ok(()), "{f}");
        }
    }

    #[test]
    fn multi_level_wildcard_not_after_separator_is_invalid() {
        assert_eq!(
            validate_topic_filter("sport/tennis#"),
            Err(TopicError::InvalidMultiLevelWildcard)
        );
        assert_eq!(
            validate_topic_filter("#sport"),
            Err(TopicError::InvalidMultiLevelWildcard)
        );
    }

    #[test]
    fn multi_level_wildcard_not_last_is_invalid() {
        assert_eq!(
            validate_topic_filter("sport/tennis/#/ranking"),
            Err(TopicError::InvalidMultiLevelWildcard)
        );
        assert_eq!(
            validate_topic_filter("#/"),
            Err(TopicError::InvalidMultiLevelWildcard)
        );
        assert_eq!(
            validate_topic_filter("sport/##"),
            Err(TopicError::InvalidMultiLevelWildcard)
        );
    }

    // ---- MQTT 3.1.1 §4.7.1.3 / MQTT 5.0 §4.7.1.3: single-level wildcard ----

    #[test]
    fn single_level_wildcard_matches_exactly_one_level() {
        assert!(matches("sport/tennis/+", "sport/tennis/player1"));
        assert!(matches("sport/tennis/+", "sport/tennis/player2"));
        assert!(!matches("sport/tennis/+", "sport/tennis/player1/ranking"));
    }

    #[test]
    fn single_level_wildcard_does_not_match_the_parent_level() {
        assert!(!matches("sport/+", "sport"));
    }

    #[test]
    fn single_level_wildcard_matches_empty_level() {
        assert!(matches("sport/+", "sport/"));
        assert!(matches("+/+", "/finance"));
        assert!(matches("/+", "/finance"));
        assert!(matches("a/+/b", "a//b"));
    }

    #[test]
    fn single_level_wildcard_alone_does_not_match_two_levels() {
        assert!(!matches("+", "/finance"));
        assert!(matches("+", "finance"));
    }

    #[test]
    fn single_level_wildcard_can_be_used_at_any_level() {
        for f in ["+", "+/tennis/#", "sport/+/player1", "+/+", "/+", "sport/+"] {
            assert_eq!(validate_topic_filter(f), Ok(()), "{f}");
        }
        assert!(matches("+/tennis/#", "sport/tennis/player1/ranking"));
        assert!(matches("sport/+/player1", "sport/tennis/player1"));
    }

    #[test]
    fn single_level_wildcard_not_occupying_an_entire_level_is_invalid() {
        for f in [
            "sport+",
            "+sport",
            "sport/+tennis",
            "sport/te+nnis",
            "++",
            "+/a+",
        ] {
            assert_eq!(
                validate_topic_filter(f),
                Err(TopicError::InvalidSingleLevelWildcard),
                "{f}"
            );
        }
    }

    // ---- MQTT 3.1.1 §4.7.2 / MQTT 5.0 §4.7.2: topics beginning with `$` ----

    #[test]
    fn filter_starting_with_multi_level_wildcard_does_not_match_dollar_topics() {
        assert!(!matches("#", "$SYS/x"));
        assert!(!matches("#", "$SYS"));
    }

    #[test]
    fn filter_starting_with_single_level_wildcard_does_not_match_dollar_topics() {
        assert!(!matches("+/monitor/Clients", "$SYS/monitor/Clients"));
        assert!(!matches("+", "$SYS"));
        assert!(!matches("+/#", "$SYS/x"));
    }

    #[test]
    fn filter_naming_the_dollar_level_matches_dollar_topics() {
        assert!(matches("$SYS/#", "$SYS/x"));
        assert!(matches("$SYS/#", "$SYS/broker/uptime"));
        assert!(matches("$SYS/monitor/+", "$SYS/monitor/Clients"));
    }

    #[test]
    fn dollar_rule_applies_only_to_the_first_level() {
        assert!(matches("+/$SYS", "a/$SYS"));
        assert!(matches("a/#", "a/$b"));
    }

    // ---- MQTT 3.1.1 §4.7.3 / MQTT 5.0 §4.7.3: topic semantics and usage ----

    #[test]
    fn topics_are_case_sensitive() {
        assert!(!matches("ACCOUNTS", "Accounts"));
        assert!(matches("Accounts", "Accounts"));
    }

    #[test]
    fn topics_may_contain_spaces() {
        assert_eq!(validate_topic_name("Accounts payable"), Ok(()));
        assert!(matches("Accounts payable", "Accounts payable"));
    }

    #[test]
    fn leading_separator_makes_a_distinct_topic() {
        assert!(!matches("/finance", "finance"));
        assert!(!matches("finance", "/finance"));
    }

    #[test]
    fn lone_separator_is_a_valid_topic_name() {
        assert_eq!(validate_topic_name("/"), Ok(()));
        assert!(matches("/", "/"));
        assert!(matches("+/+", "/"));
        assert!(!matches("+", "/"));
    }

    #[test]
    fn empty_levels_are_distinct_levels() {
        assert!(!matches("a/b", "a//b"));
        assert!(matches("a//b", "a//b"));
    }

    #[test]
    fn topic_must_be_at_least_one_character_long() {
        assert_eq!(validate_topic_name(""), Err(TopicError::Empty));
        assert_eq!(validate_topic_filter(""), Err(TopicError::Empty));
    }

    #[test]
    fn topic_must_not_contain_the_null_character() {
        assert_eq!(validate_topic_name("a\0b"), Err(TopicError::NullCharacter));
        assert_eq!(
            validate_topic_filter("a/\0/#"),
            Err(TopicError::NullCharacter)
        );
    }

    #[test]
    fn topic_must_not_be_longer_than_65535_bytes() {
        let longest = "a".repeat(MAX_TOPIC_LEN);
        assert_eq!(validate_topic_name(&longest), Ok(()));
        assert_eq!(validate_topic_filter(&longest), Ok(()));
        let too_long = "a".repeat(MAX_TOPIC_LEN + 1);
        assert_eq!(validate_topic_name(&too_long), Err(TopicError::TooLong));
        assert_eq!(validate_topic_filter(&too_long), Err(TopicError::TooLong));
    }

    #[test]
    fn topic_length_is_counted_in_utf8_bytes() {
        // "é" is two bytes, so this is 65536 bytes in 32768 characters.
        let too_long = "é".repeat(MAX_TOPIC_LEN.div_ceil(2));
        assert_eq!(validate_topic_name(&too_long), Err(TopicError::TooLong));
    }

    #[test]
    fn topic_name_must_not_contain_wildcards() {
        for name in ["sport/+", "sport/#", "+", "#", "a+b", "a#b"] {
            assert_eq!(
                validate_topic_name(name),
                Err(TopicError::WildcardInTopicName),
                "{name}"
            );
        }
    }

    #[test]
    fn topic_name_may_begin_with_dollar() {
        assert_eq!(validate_topic_name("$SYS/broker/uptime"), Ok(()));
    }

    // ---- MQTT 5.0 §4.8.2: shared subscriptions ----

    #[test]
    fn shared_subscription_splits_into_group_and_filter() {
        assert_eq!(
            parse_shared("$share/consumer1/sport/tennis/+"),
            Ok(Some(SharedSubscription {
                group: "consumer1",
                filter: "sport/tennis/+",
            }))
        );
        assert_eq!(
            parse_shared("$share/consumer2/#"),
            Ok(Some(SharedSubscription {
                group: "consumer2",
                filter: "#",
            }))
        );
    }

    #[test]
    fn ordinary_filter_is_not_a_shared_subscription() {
        assert_eq!(parse_shared("sport/tennis/+"), Ok(None));
        assert_eq!(parse_shared("$share"), Ok(None));
        assert_eq!(parse_shared("$SYS/#"), Ok(None));
        assert_eq!(parse_shared("share/a/b"), Ok(None));
    }

    #[test]
    fn ordinary_filter_is_still_validated_by_parse_shared() {
        assert_eq!(
            parse_shared("sport+"),
            Err(TopicError::InvalidSingleLevelWildcard)
        );
    }

    #[test]
    fn share_name_must_be_at_least_one_character_long() {
        for f in ["$share//sport", "$share/", "$share//"] {
            assert_eq!(
                validate_topic_filter(f),
                Err(SharedSubscriptionError::EmptyShareName.into()),
                "{f}"
            );
        }
    }

    #[test]
    fn share_name_must_not_contain_wildcards() {
        for f in [
            "$share/+/sport",
            "$share/a#/sport",
            "$share/gr+oup/sport",
            "$share/#",
        ] {
            assert_eq!(
                validate_topic_filter(f),
                Err(SharedSubscriptionError::WildcardInShareName.into()),
                "{f}"
            );
        }
    }

    #[test]
    fn share_name_ends_at_the_first_separator() {
        assert_eq!(
            parse_shared("$share/a/b/c"),
            Ok(Some(SharedSubscription {
                group: "a",
                filter: "b/c",
            }))
        );
    }

    #[test]
    fn share_name_must_be_followed_by_separator_and_filter() {
        for f in ["$share/group", "$share/group/"] {
            assert_eq!(
                validate_topic_filter(f),
                Err(SharedSubscriptionError::MissingFilter.into()),
                "{f}"
            );
        }
    }

    #[test]
    fn shared_subscription_filter_must_be_valid() {
        assert_eq!(
            validate_topic_filter("$share/group/sport/tennis#"),
            Err(TopicError::InvalidMultiLevelWildcard)
        );
        assert_eq!(
            validate_topic_filter("$share/group/sport+"),
            Err(TopicError::InvalidSingleLevelWildcard)
        );
        assert_eq!(
            validate_topic_filter("$share/group/a\0"),
            Err(TopicError::NullCharacter)
        );
    }

    #[test]
    fn shared_subscription_matches_as_its_filter() {
        assert!(matches("$share/group/sport/#", "sport/tennis"));
        assert!(matches("$share/group/+/tennis", "sport/tennis"));
        assert!(!matches("$share/group/sport/+", "sport"));
        assert!(!matches("$share/group/sport", "$share/group/sport"));
    }

    #[test]
    fn shared_subscription_with_wildcard_first_does_not_match_dollar_topics() {
        assert!(!matches("$share/group/#", "$SYS/x"));
        assert!(matches("$share/group/$SYS/#", "$SYS/x"));
    }

    #[test]
    fn malformed_shared_subscription_matches_nothing() {
        assert!(!matches("$share/group", "$share/group"));
        assert!(!matches("$share/group/", "$share/group/"));
    }

    // ---- TopicName / TopicFilter ----

    #[test]
    fn topic_name_is_validated_at_construction() {
        assert_eq!(
            TopicName::new("sport/+"),
            Err(TopicError::WildcardInTopicName)
        );
        assert_eq!(TopicName::try_from(""), Err(TopicError::Empty));
        assert_eq!(
            TopicName::try_from(String::from("a\0")),
            Err(TopicError::NullCharacter)
        );
        let name = TopicName::try_from("sport/tennis").expect("valid name");
        assert_eq!(name.as_str(), "sport/tennis");
        assert_eq!(name, "sport/tennis");
        assert_eq!(&*name, "sport/tennis");
        assert_eq!(name.to_string(), "sport/tennis");
        assert_eq!(AsRef::<str>::as_ref(&name), "sport/tennis");
        assert_eq!(name.into_inner(), ByteString::from("sport/tennis"));
    }

    #[test]
    fn topic_filter_is_validated_at_construction() {
        assert_eq!(
            TopicFilter::new("sport/#/ranking"),
            Err(TopicError::InvalidMultiLevelWildcard)
        );
        assert_eq!(
            TopicFilter::try_from(String::from("$share//a")),
            Err(SharedSubscriptionError::EmptyShareName.into())
        );
        let f = TopicFilter::try_from(ByteString::from("sport/+")).expect("valid filter");
        assert_eq!(f.to_string(), "sport/+");
        assert_eq!(ByteString::from(f), ByteString::from("sport/+"));
    }

    #[test]
    fn topic_filter_matches_names() {
        let f = filter("sport/tennis/+");
        let name = TopicName::new("sport/tennis/player1").expect("valid name");
        assert!(f.matches(&name));
        assert!(!f.matches("sport/tennis/player1/ranking"));
    }

    #[test]
    fn topic_filter_knows_whether_it_uses_wildcards() {
        assert!(filter("sport/+").is_wildcard());
        assert!(filter("#").is_wildcard());
        assert!(filter("$share/g/a/#").is_wildcard());
        assert!(!filter("sport/tennis").is_wildcard());
        assert!(!filter("$share/g/sport").is_wildcard());
    }

    #[test]
    fn topic_filter_exposes_its_shared_subscription() {
        assert_eq!(
            filter("$share/g/sport/#").shared(),
            Some(SharedSubscription {
                group: "g",
                filter: "sport/#",
            })
        );
        assert_eq!(filter("sport/#").shared(), None);
    }

    #[test]
    fn topics_order_and_look_up_like_strings() {
        let set: BTreeSet<TopicFilter> = ["b", "a/#", "a"].into_iter().map(filter).collect();
        assert!(set.contains("a/#"));
        let ordered: Vec<&str> = set.iter().map(TopicFilter::as_str).collect();
        assert_eq!(ordered, ["a", "a/#", "b"]);
    }

    #[test]
    fn errors_describe_the_rule_broken() {
        let err: TopicError = SharedSubscriptionError::MissingFilter.into();
        // The wrapper names the kind; the rule broken is its source, printed once.
        assert_eq!(err.to_string(), "invalid shared subscription");
        assert_eq!(
            core::error::Error::source(&err).map(|cause| cause.to_string()),
            Some("the ShareName must be followed by `/` and a topic filter".into())
        );
    }
}
