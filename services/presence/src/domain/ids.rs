//! Who presence is about: a member of an app, one of their devices, or a chat endpoint;
//! and the checks their ids pass before they reach identity or the store.

use palaver_kit::Error;

/// Longest id accepted for an app, member, device or endpoint.
const MAX_ID_LEN: usize = 128;

/// A member of an app: the key of their presence record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberKey {
    pub app_id: String,
    pub member_id: String,
}

impl MemberKey {
    /// Checks both ids.
    pub fn new(app_id: &str, member_id: &str) -> Result<Self, Error> {
        check_id("app_id", app_id)?;
        check_id("member_id", member_id)?;
        Ok(MemberKey {
            app_id: app_id.to_owned(),
            member_id: member_id.to_owned(),
        })
    }
}

impl std::fmt::Display for MemberKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.app_id, self.member_id)
    }
}

/// One device of a member: a console tab, a CLI session, a gateway socket.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeviceKey {
    pub member: MemberKey,
    pub device_id: String,
}

impl DeviceKey {
    /// Checks every id; `field` prefixes the names of violations (`devices[3]`).
    pub fn new(field: &str, app_id: &str, member_id: &str, device_id: &str) -> Result<Self, Error> {
        let within = |name: &str| {
            if field.is_empty() {
                name.to_owned()
            } else {
                format!("{field}.{name}")
            }
        };
        check_id(&within("app_id"), app_id)?;
        check_id(&within("member_id"), member_id)?;
        check_id(&within("device_id"), device_id)?;
        Ok(DeviceKey {
            member: MemberKey {
                app_id: app_id.to_owned(),
                member_id: member_id.to_owned(),
            },
            device_id: device_id.to_owned(),
        })
    }
}

/// Whose presence a reader asks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    Member(String),
    Endpoint(String),
}

impl Target {
    /// Checks the id the target names; `field` names it in a violation.
    pub fn check(&self, field: &str) -> Result<(), Error> {
        match self {
            Target::Member(id) => check_id(&format!("{field}.member_id"), id),
            Target::Endpoint(id) => check_id(&format!("{field}.endpoint"), id),
        }
    }
}

/// Ids are 1 to 128 letters, digits, `-` or `_`: they become NATS subject tokens and
/// key-value keys, where dots, wildcards and spaces would change the meaning.
pub fn check_id(field: &str, value: &str) -> Result<(), Error> {
    if value.is_empty() {
        return Err(Error::invalid(field, "is required"));
    }
    if value.len() > MAX_ID_LEN {
        return Err(Error::invalid(
            field,
            format!("must be at most {MAX_ID_LEN} characters"),
        ));
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(Error::invalid(
            field,
            "may hold only letters, digits, '-' and '_'",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use palaver_kit::ErrorCode;

    use super::*;

    #[test]
    fn ids_are_subject_tokens() {
        for valid in ["app_1", "mem-X9", "a"] {
            assert!(check_id("member_id", valid).is_ok(), "{valid}");
        }
        for invalid in ["", "a.b", "a*", "a>", "a b", "é", &"x".repeat(129)] {
            let error = check_id("member_id", invalid).unwrap_err();
            assert_eq!(error.code, ErrorCode::InvalidArgument, "{invalid}");
            assert_eq!(error.violations[0].field, "member_id");
        }
    }

    #[test]
    fn violations_name_the_field_within_a_batch() {
        let error = DeviceKey::new("devices[2]", "app", "m1", "").unwrap_err();
        assert_eq!(error.violations[0].field, "devices[2].device_id");
        let error = DeviceKey::new("", "", "m1", "d1").unwrap_err();
        assert_eq!(error.violations[0].field, "app_id");
        let error = Target::Endpoint("ce.x".into())
            .check("targets[0]")
            .unwrap_err();
        assert_eq!(error.violations[0].field, "targets[0].endpoint");
    }
}
