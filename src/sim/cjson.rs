//! cJSON's formatted printer, which FreeSWITCH uses for `conference json_list`: tabs for
//! indentation, `"key":<TAB>value`, arrays on one line separated by `, `.

use serde_json::Value;

pub fn print(value: &Value) -> String {
    let mut out = String::new();
    write(value, 0, &mut out);
    out
}

fn tabs(depth: usize, out: &mut String) {
    out.extend(std::iter::repeat_n('\t', depth));
}

fn write(value: &Value, depth: usize, out: &mut String) {
    match value {
        Value::Object(map) => {
            out.push_str("{\n");
            let len = map.len();
            for (i, (key, v)) in map.iter().enumerate() {
                tabs(depth + 1, out);
                out.push_str(&Value::String(key.clone()).to_string());
                out.push_str(":\t");
                write(v, depth + 1, out);
                if i + 1 < len {
                    out.push(',');
                }
                out.push('\n');
            }
            tabs(depth, out);
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write(v, depth + 1, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_like_cjson() {
        let v = serde_json::json!([{"conference_name": "room1", "variables": {}, "members": [{"id": 3}]}]);
        assert_eq!(
            print(&v),
            "[{\n\t\t\"conference_name\":\t\"room1\",\n\t\t\"variables\":\t{\n\t\t},\n\t\t\"members\":\t[{\n\t\t\t\t\"id\":\t3\n\t\t\t}]\n\t}]"
        );
    }
}
