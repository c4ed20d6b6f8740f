/// How log lines are written: `text` for people (`2026-11-25T10:00:00.123Z info ringproxy started workers=2`),
/// `json` for log pipelines (one object per line).
public enum LogFormat: String, CaseIterable, Sendable {
    case text, json
}
