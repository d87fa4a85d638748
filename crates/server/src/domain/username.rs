//! One name, one user (RFC 8265, PRECIS usernames; UTS #39 confusables).
//!
//! A person cannot tell `café` typed on one keyboard (NFC) from the same word typed on another
//! (NFD), nor `alice` from `аlice` with a Cyrillic `а`. So names are stored and looked up in NFC,
//! and `user add` refuses names that could be mistaken for another: spaces at either end,
//! control, invisible or unassigned characters, and any name that looks like an existing one.
//!
//! Lookups stay case-sensitive after NFC: the platform does not say otherwise, and an exact
//! match means a name never reaches a user it was not created as. Case-insensitive collisions
//! are refused on add instead, so no two users differ only in case.

use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick, is_nfd_quick};
use unicode_security::GeneralSecurityProfile;
use unicode_security::general_security_profile::IdentifierType;

use super::DomainError;
use crate::store::{Store, StoreError};

/// Characters the platform refuses in a username (`INPUT_INVALID.Request.InvalidCharacter`).
pub const USERNAME_FORBIDDEN_CHARS: [char; 3] = ['\'', '<', '\\'];

/// Longest username accepted by `user add`; logins with longer names simply fail.
pub const MAX_USERNAME_LEN: usize = 256;

/// Checks a new username and returns it in the form to store (NFC).
pub fn validate_new_username(username: &str) -> Result<String, DomainError> {
    let invalid = |why: &str| Err(DomainError::InvalidInput(format!("username {why}")));
    if username.trim().is_empty() {
        return invalid("must not be empty");
    }
    if username.len() > MAX_USERNAME_LEN {
        return invalid(&format!("must be at most {MAX_USERNAME_LEN} bytes"));
    }
    if username
        .chars()
        .any(|c| USERNAME_FORBIDDEN_CHARS.contains(&c) || c.is_control())
    {
        return invalid("must not contain ', <, \\ or control characters");
    }
    if username.starts_with(char::is_whitespace) || username.ends_with(char::is_whitespace) {
        return invalid("must not begin or end with a space");
    }
    if let Some(c) = username.chars().find(|&c| is_ambiguous(c)) {
        return invalid(&format!(
            "must not contain invisible, unassigned or non-ASCII space characters (found U+{:04X})",
            u32::from(c)
        ));
    }
    Ok(username.nfc().collect())
}

/// Characters that do not show, or show as something else, in a list of names.
fn is_ambiguous(c: char) -> bool {
    (c.is_whitespace() && c != ' ')
        || matches!(
            c.identifier_type(),
            // Code points the table leaves out are unassigned, private-use or noncharacters.
            None | Some(
                IdentifierType::Default_Ignorable
                    | IdentifierType::Not_Character
                    | IdentifierType::Deprecated
            )
        )
}

/// What a name looks like to a person: two names with equal keys can be taken for each other.
///
/// Both parts fold width and compatibility forms (NFKC), map each character to its UTS #39
/// confusable prototype and collapse runs of spaces; the second also ignores case. Two parts,
/// because case and look-alikes overlap: `ALICE` and `alice` differ in skeleton (`I` imitates
/// `l`) but not once lowercased, while `aIice` meets `alice` only before lowercasing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollisionKey {
    skeleton: String,
    caseless_skeleton: String,
}

impl CollisionKey {
    /// The key of a username: two names with one key cannot both exist.
    pub fn of(username: &str) -> Self {
        let folded: String = username.nfkc().collect();
        Self {
            skeleton: skeleton(&folded),
            caseless_skeleton: skeleton(&folded.to_lowercase()),
        }
    }

    /// Whether the two names could be mistaken for each other.
    pub fn collides_with(&self, other: &Self) -> bool {
        self.skeleton == other.skeleton || self.caseless_skeleton == other.caseless_skeleton
    }
}

fn skeleton(s: &str) -> String {
    let skeleton: String = unicode_security::skeleton(s).collect();
    skeleton.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Refuses a new name that a person could take for an existing user's.
///
/// Compares against every stored name: fine at the scale of `user add`, which an administrator
/// runs, and it needs no stored key (so users added before this rule are compared too). Two
/// `user add` racing each other can both pass; the exact-name uniqueness of the store still
/// holds.
pub(super) async fn refuse_look_alike(
    store: &dyn Store,
    username: &str,
) -> Result<(), DomainError> {
    let key = CollisionKey::of(username);
    let users = store.list_users().await?;
    match users
        .iter()
        .find(|u| u.username != username && key.collides_with(&CollisionKey::of(&u.username)))
    {
        Some(existing) => Err(DomainError::InvalidInput(format!(
            "username {username:?} looks like the existing user {:?}; choose a name that differs \
             by more than case, width, accents' encoding or look-alike letters",
            existing.username
        ))),
        None => Ok(()),
    }
}

/// The name under which `given` is known: its stored spelling when a user has one (a name
/// stored before normalisation may not be in NFC), else its NFC. Every spelling of one name
/// thus reaches the same user and the same lockout counter. A name with a single spelling
/// (ASCII ones among them) costs no query; others two or three indexed lookups, the same
/// whether or not the user exists.
pub async fn resolve_username(store: &dyn Store, given: &str) -> Result<String, StoreError> {
    if is_nfc_quick(given.chars()) == IsNormalized::Yes
        && is_nfd_quick(given.chars()) == IsNormalized::Yes
    {
        return Ok(given.to_owned());
    }
    let nfc: String = given.nfc().collect();
    let nfd: String = given.nfd().collect();
    // The exact bytes first: two users stored before normalisation in different spellings
    // each keep their own.
    let mut spellings = vec![given];
    for spelling in [nfc.as_str(), nfd.as_str()] {
        if !spellings.contains(&spelling) {
            spellings.push(spelling);
        }
    }
    // Every spelling is looked up, found or not: how many queries a login costs depends on
    // the name given, never on whether a user has it.
    let mut found = None;
    for spelling in spellings {
        if store.find_user(spelling).await?.is_some() && found.is_none() {
            found = Some(spelling.to_owned());
        }
    }
    Ok(found.unwrap_or(nfc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_pass_and_come_back_unchanged() {
        for name in [
            "zbeeblebrox",
            "a.b@example.com",
            "Jean Dupont",
            "東京太郎",
            "müller",
        ] {
            assert_eq!(validate_new_username(name).unwrap(), name);
        }
    }

    #[test]
    fn new_names_are_stored_in_nfc() {
        assert_eq!(validate_new_username("cafe\u{301}").unwrap(), "caf\u{e9}");
    }

    #[test]
    fn ambiguous_names_are_refused() {
        for bad in [
            "",
            "  ",
            "o'brien",
            "a<b",
            "a\\b",
            "tab\there",
            "alice ",
            " alice",
            "alice\u{a0}",
            "ali\u{200b}ce",   // zero-width space
            "ali\u{200d}ce",   // zero-width joiner
            "ali\u{ad}ce",     // soft hyphen
            "alice\u{202e}",   // right-to-left override
            "al\u{3000}ice",   // ideographic space
            "a\u{fe0f}lice",   // variation selector
            "\u{3164}",        // Hangul filler
            "alice\u{e000}",   // private use
            "alice\u{10ffff}", // noncharacter
        ] {
            let err = validate_new_username(bad).unwrap_err();
            let message = err.to_string();
            assert!(matches!(err, DomainError::InvalidInput(_)), "{bad:?}");
            assert!(message.starts_with("invalid input: username "), "{message}");
            assert_eq!(message.lines().count(), 1);
        }
        assert!(validate_new_username(&"x".repeat(257)).is_err());
        assert!(validate_new_username(&"x".repeat(256)).is_ok());
    }

    fn look_alike(a: &str, b: &str) -> bool {
        CollisionKey::of(a).collides_with(&CollisionKey::of(b))
    }

    #[test]
    fn look_alikes_collide() {
        for same in [
            "Alice",
            "ALICE",
            "\u{430}lice",  // Cyrillic а
            "\u{ff41}lice", // fullwidth ａ
            "aIice",        // capital I for l
            "a1ice",        // digit 1 for l
            "alice",
        ] {
            assert!(look_alike(same, "alice"), "{same:?}");
            assert!(look_alike("alice", same), "{same:?}");
        }
        assert!(look_alike("caf\u{e9}", "cafe\u{301}"));
        assert!(look_alike("CAF\u{c9}", "cafe\u{301}"));
        assert!(look_alike("a  b", "a b"));
        assert!(look_alike("modern", "rnodern"));
        for other in ["bob", "alicia", "alice2", "cafe", "alice.b"] {
            assert!(!look_alike(other, "alice"), "{other:?}");
        }
        assert!(!look_alike("cafe", "caf\u{e9}"));
    }
}
