//! What a configuration file that does not parse is told: the line and column, and what was
//! wrong there, never the text there. toml's own `Display` quotes the offending line, and
//! serde's messages quote the value (``invalid type: integer `…`, expected a string``): on a
//! `password` or a `secret_access_key` line that is the secret, and `config check` prints it,
//! `serve` and a reload log it.

use super::ConfigError;

/// `error`, as found in `text`, without anything `text` holds.
pub(super) fn described(text: &str, error: &toml::de::Error) -> ConfigError {
    let message = without_values(error.message());
    match error.span() {
        Some(span) => {
            let (line, column) = position(text, span.start);
            ConfigError::Parse {
                line,
                column,
                message,
            }
        }
        None => ConfigError::Invalid(message),
    }
}

/// The 1-based line and column (in characters, as editors count) of the byte `offset`.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let (mut line, mut column) = (1, 1);
    for (_, c) in text.char_indices().take_while(|(i, _)| *i < offset) {
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    (line, column)
}

/// Serde's messages that quote the file's value keep the kind of value and drop the value:
/// ``invalid type: string "…", expected a boolean`` becomes `invalid type: string, expected a
/// boolean`, ``unknown variant `…`, expected `text` or `json` `` loses the variant. Field names
/// (``unknown field `x` ``, ``missing field `x` ``) are kept: they are the configuration's own
/// words.
fn without_values(message: &str) -> String {
    for lead in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(lead)
            && let Some((given, expected)) = rest.rsplit_once(", expected ")
        {
            // `string "…"`, ``integer `…` ``, ``floating point `…` ``, `sequence`, `map`…
            let kind = given.split(['`', '"']).next().unwrap_or_default().trim();
            return format!("{lead}{kind}, expected {expected}");
        }
    }
    if message.starts_with("unknown variant ")
        && let Some((_, expected)) = message.rsplit_once(", expected ")
    {
        return format!("unknown variant, expected {expected}");
    }
    message.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_position_counts_lines_and_characters_from_one() {
        let text = "a = 1\nbé = 'x' y\n";
        assert_eq!(position(text, 0), (1, 1));
        assert_eq!(position(text, 4), (1, 5));
        assert_eq!(position(text, 6), (2, 1));
        // `y`, after the two-byte `é`: the line's 10th character, its 11th byte.
        assert_eq!(position(text, 16), (2, 10));
        assert_eq!(position(text, 1000), (3, 1));
    }

    #[test]
    fn serde_messages_lose_the_value_and_keep_its_kind_and_the_field() {
        for (given, told) in [
            (
                "invalid type: integer `86753094242`, expected a string",
                "invalid type: integer, expected a string",
            ),
            (
                "invalid type: string \"s3cr, expected et\", expected a boolean",
                "invalid type: string, expected a boolean",
            ),
            (
                "invalid value: floating point `1500.0`, expected u16",
                "invalid value: floating point, expected u16",
            ),
            (
                "invalid type: sequence, expected a string",
                "invalid type: sequence, expected a string",
            ),
            (
                "unknown variant `s3cret`, expected `text` or `json`",
                "unknown variant, expected `text` or `json`",
            ),
            (
                "unknown field `secret_access_key`, expected one of `store`, `endpoint`",
                "unknown field `secret_access_key`, expected one of `store`, `endpoint`",
            ),
            ("missing field `password`", "missing field `password`"),
            (
                "invalid basic string, expected `\"`",
                "invalid basic string, expected `\"`",
            ),
        ] {
            assert_eq!(without_values(given), told);
        }
    }
}
