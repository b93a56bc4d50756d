//! Flow actions of a room (seeds 000–003): `pre_actions` run for a participant who has just
//! joined, `post_actions` for one who leaves. `talk` is the action a media node can perform; an
//! action is checked once, when the room is created, so what reaches a node is always speakable.

use serde_json::Value;

use super::model::Action;

/// The action types a room accepts.
pub const SUPPORTED_TYPES: &[&str] = &["talk"];
/// The languages `talk` can speak (the node's text-to-speech engine is flite: English voices).
pub const SUPPORTED_LANGUAGES: &[&str] = &["en-US", "en"];
/// The voices `talk` can choose between.
pub const SUPPORTED_GENDERS: &[&str] = &["female", "male", "neutral"];
/// Most actions per list, and the longest text one `talk` may carry (characters).
pub const MAX_ACTIONS: usize = 16;
pub const MAX_TEXT: usize = 1024;

/// Characters a spoken text may not contain: quoting, escaping, application and argument
/// separators and variable expansion on a FreeSWITCH command line.
const FORBIDDEN: &[char] = &['\'', '"', '\\', '^', '|', '{', '}', '`'];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gender {
    Female,
    Male,
    Neutral,
}

/// One thing to say to a participant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Talk {
    pub text: String,
    pub language: String,
    pub gender: Gender,
}

/// Why an action list is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    #[error("unsupported action type {0:?}; supported: {SUPPORTED_TYPES:?}")]
    UnsupportedType(String),
    #[error("unsupported talk language {0:?}; supported: {SUPPORTED_LANGUAGES:?}")]
    UnsupportedLanguage(String),
    #[error("unsupported talk gender {0:?}; supported: {SUPPORTED_GENDERS:?}")]
    UnsupportedGender(String),
    #[error("talk needs option.text: 1 to {MAX_TEXT} characters of printable text")]
    BadText,
    #[error(
        "talk text may not contain control characters or any of ' \" \\ ^ | {{ }} ` (they would change a FreeSWITCH command)"
    )]
    ForbiddenCharacter,
    #[error("at most {MAX_ACTIONS} actions")]
    TooMany,
}

/// The talks an action list performs, in order; every action must be one a node can perform.
pub fn talks(actions: &[Action]) -> Result<Vec<Talk>, ActionError> {
    if actions.len() > MAX_ACTIONS {
        return Err(ActionError::TooMany);
    }
    actions.iter().map(talk).collect()
}

fn talk(action: &Action) -> Result<Talk, ActionError> {
    if action.kind != "talk" {
        return Err(ActionError::UnsupportedType(clip(&action.kind)));
    }
    // A field that is there must be a string; an absent one takes its default.
    let field = |name: &str| match action.option.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(other) => Err(other.to_string()),
    };
    let text = field("text").ok().flatten().ok_or(ActionError::BadText)?;
    let language = field("language").map_err(|v| ActionError::UnsupportedLanguage(clip(&v)))?;
    let gender = field("gender").map_err(|v| ActionError::UnsupportedGender(clip(&v)))?;
    speech(text, language, gender)
}

/// Text to speak with a language and voice (`en-US` and `female` when not given), checked as a
/// `talk` action's options are: what a room or a member hears spoken.
pub fn speech(
    text: &str,
    language: Option<&str>,
    gender: Option<&str>,
) -> Result<Talk, ActionError> {
    if text.trim().is_empty() || text.chars().count() > MAX_TEXT {
        return Err(ActionError::BadText);
    }
    if text
        .chars()
        .any(|c| c.is_control() || FORBIDDEN.contains(&c))
    {
        return Err(ActionError::ForbiddenCharacter);
    }
    let language = language.unwrap_or("en-US");
    if !SUPPORTED_LANGUAGES.contains(&language) {
        return Err(ActionError::UnsupportedLanguage(clip(language)));
    }
    let gender = match gender.unwrap_or("female") {
        "female" => Gender::Female,
        "male" => Gender::Male,
        "neutral" => Gender::Neutral,
        other => return Err(ActionError::UnsupportedGender(clip(other))),
    };
    Ok(Talk {
        text: text.to_owned(),
        language: language.to_owned(),
        gender,
    })
}

fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use uuid::Uuid;

    fn action(kind: &str, option: Value) -> Action {
        Action {
            id: Uuid::nil(),
            next_id: Uuid::nil(),
            kind: kind.into(),
            option,
        }
    }

    #[test]
    fn the_seed_example_is_a_talk() {
        let a = action(
            "talk",
            json!({"text": "Hello. Welcome to the test conference.", "gender": "female", "language": "en-US"}),
        );
        assert_eq!(
            talks(&[a]).unwrap(),
            vec![Talk {
                text: "Hello. Welcome to the test conference.".into(),
                language: "en-US".into(),
                gender: Gender::Female
            }]
        );
    }

    #[test]
    fn what_a_node_cannot_speak_is_refused() {
        let cases = [
            (action("play", json!({})), "unsupported action type"),
            (
                action("talk", json!({"text": "hola", "language": "es-ES"})),
                "language",
            ),
            (
                action("talk", json!({"text": "hi", "gender": "robot"})),
                "gender",
            ),
            (action("talk", json!({"text": "  "})), "option.text"),
            (action("talk", json!({})), "option.text"),
            (
                action("talk", json!({"text": "x ${sofia_profile} y"})),
                "may not contain",
            ),
            (action("talk", json!({"text": "it's"})), "may not contain"),
            (action("talk", json!({"text": "a\nb"})), "may not contain"),
            (action("talk", json!({"text": "a^park"})), "may not contain"),
        ];
        for (a, why) in cases {
            let err = talks(std::slice::from_ref(&a)).unwrap_err().to_string();
            assert!(err.contains(why), "{a:?}: {err}");
        }
        let many = vec![action("talk", json!({"text": "hi"})); MAX_ACTIONS + 1];
        assert_eq!(talks(&many), Err(ActionError::TooMany));
    }
}
