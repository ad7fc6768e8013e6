use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The process id of a container's init process.
pub const INIT_PROCESS_ID: &str = "init";

/// Longest id accepted: keeps `<root>/<id>/shim.sock` under the 108-byte socket limit.
const MAX_ID_LEN: usize = 64;

/// Why an id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The id was empty.
    #[error("an id may not be empty")]
    Empty,
    /// The id was longer than 64 characters.
    #[error("id {0:?} is longer than 64 characters")]
    TooLong(String),
    /// The id had a character outside `[a-zA-Z0-9_.-]` or did not start with a letter or digit.
    #[error("invalid id {0:?}: use [a-zA-Z0-9][a-zA-Z0-9_.-]*")]
    Invalid(String),
}

fn validate(s: &str) -> Result<(), IdError> {
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return Err(IdError::Empty);
    };
    if s.len() > MAX_ID_LEN {
        return Err(IdError::TooLong(s.to_owned()));
    }
    // Starting with an alphanumeric excludes ".", ".." and hidden names; the rest
    // excludes "/" so an id can never name a path outside its own directory.
    let ok = first.is_ascii_alphanumeric()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(IdError::Invalid(s.to_owned()))
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates `s` as an id.
            pub fn new(s: impl Into<String>) -> Result<Self, IdError> {
                let s = s.into();
                validate(&s)?;
                Ok(Self(s))
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// A container's id (which is also its name): `[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}`.
    ContainerId
);
id_type!(
    /// A process id within a container: `"init"` or an exec's id chosen by the caller.
    ProcessId
);

impl ProcessId {
    /// The id of a container's init process.
    pub fn init() -> Self {
        Self(INIT_PROCESS_ID.to_owned())
    }

    /// Whether this is the init process.
    pub fn is_init(&self) -> bool {
        self.0 == INIT_PROCESS_ID
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_docker_like_names() {
        for ok in ["a", "web-1", "A.b_c", "0123456789ab", &"x".repeat(64)] {
            assert!(ContainerId::new(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_paths_and_empty() {
        assert_eq!(ContainerId::new(""), Err(IdError::Empty));
        for bad in [".", "..", "../x", "a/b", "-a", "_a", ".a", "a b", "é"] {
            assert!(
                matches!(ContainerId::new(bad), Err(IdError::Invalid(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            ContainerId::new("x".repeat(65)),
            Err(IdError::TooLong(_))
        ));
    }

    #[test]
    fn serde_validates() {
        assert!(serde_json::from_str::<ContainerId>("\"../etc\"").is_err());
        let id: ProcessId = serde_json::from_str("\"init\"").unwrap();
        assert!(id.is_init());
    }
}
