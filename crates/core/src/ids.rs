//! Identifiers: UUID v7, so that ids sort by creation time and make good keyset cursors.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new id (UUID v7): later ids sort after earlier ones.
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }

            /// The id as a UUID.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(text).map(Self)
            }
        }
    };
}

uuid_id!(
    /// The id of a function; stable across updates and renames.
    FunctionId
);
uuid_id!(
    /// The id of an execution.
    ExecutionId
);
uuid_id!(
    /// The id of an approval.
    ApprovalId
);
uuid_id!(
    /// The id of a schedule.
    ScheduleId
);
uuid_id!(
    /// The id of one notification's delivery of one event.
    DeliveryId
);

impl ScheduleId {
    /// The id of a schedule declared in the config file, made from what declares it (`key`, its canonical text): the
    /// same declaration gets the same id on every start and every instance, so it is created once. A UUID of version
    /// 8 (custom), from the first 16 bytes of `digest` (a hash of `key` the caller computed).
    pub fn from_digest(digest: [u8; 16]) -> Self {
        Self(Uuid::new_v8(digest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_creation() {
        let first = ExecutionId::generate();
        let second = ExecutionId::generate();
        assert!(first < second);
    }

    #[test]
    fn ids_round_trip_through_text() {
        let id = FunctionId::generate();
        assert_eq!(id.to_string().parse::<FunctionId>().ok(), Some(id));
        assert!("not-a-uuid".parse::<FunctionId>().is_err());
    }
}
