// SettingValues: TrainingConfig as a JSON object of settings by key, and the one set of rules that
// puts a run's settings together — from the defaults, a recipe file or a checkpoint, and the
// settings given explicitly (the command line's flags).
//
// Every stored property of TrainingConfig is a setting, found by reflection, so a new property is a
// new setting everywhere at once: in recipe files, checkpoints, these rules and the flag merge. A
// setting's key is its property name in snake case, as JSONCoding writes it. Not here: reading
// files (the callers) and flag names (the command line presents SettingErrors with its flags).
import CoreSupport
import Foundation

extension TrainingConfig {
    /// Every setting's key, in declaration order.
    public static let settingKeys: [String] = Mirror(reflecting: TrainingConfig()).children.compactMap { $0.label.map(settingKey) }

    /// Settings whose value may be absent (nil: "not set", e.g. `hidden`: the preset's widths).
    static let optionalKeys: Set<String> = Set(Mirror(reflecting: TrainingConfig()).children.compactMap { child in
        Mirror(reflecting: child.value).displayStyle == .optional ? child.label.map(settingKey) : nil
    })

    /// How a resumed run treats a setting given again: every setting keeps the checkpoint's value,
    /// except those listed here.
    public enum ResumeRule: Sendable { case fixed, mayGrow }
    public static let resumeRules: [String: ResumeRule] = ["epochs": .mayGrow]

    /// The settings as a JSON object by key (a nil setting is absent).
    public func settingObject() -> [String: Any] {
        // Encoding a TrainingConfig cannot fail: every value is finite once validated, and the
        // object is only asked of validated or default configurations.
        let data = (try? Self.settingsEncoder().encode(self)) ?? Data("{}".utf8)
        return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
    }

    /// Settings from a JSON object in which any setting may be missing (a recipe file): missing
    /// settings take their defaults; a key that is not a setting is refused, naming the closest one.
    public init(recipe object: [String: Any]) throws(SettingError) {
        try Self.refuseUnknownKeys(object)
        self = try Self.decode(TrainingConfig().settingObject().merging(object) { _, given in given })
    }

    /// Settings from a JSON object that must hold every setting (a checkpoint's): a missing one is
    /// refused rather than silently replaced by its default (which would resume another run).
    public init(complete object: [String: Any]) throws(SettingError) {
        try Self.refuseUnknownKeys(object)
        if let missing = Self.settingKeys.first(where: { object[$0] == nil && !Self.optionalKeys.contains($0) }) {
            throw SettingError(missing, "missing (a complete description of a run holds every setting)")
        }
        self = try Self.decode(object)
    }

    /// This configuration with the settings `given` (by key) applied — the one merge of a run's
    /// settings. For a new run (`resuming` nil) any setting may be given. A run resumed from
    /// `resuming` keeps its settings: a given value that differs from this one is refused, unless its
    /// ResumeRule allows it (`epochs` may be raised, never lowered).
    public func merging(_ given: [String: any Encodable], resuming source: String? = nil) throws(SettingError) -> TrainingConfig {
        var object = settingObject()
        for (key, value) in given {
            guard Self.settingKeys.contains(key) else { throw Self.unknown(key) }
            object[key] = try Self.jsonValue(value, key: key)
        }
        let merged = try Self.decode(object)
        if let source { try checkResume(merged, given: given.keys.sorted(), source: source) }
        return merged
    }

    /// A run resumed from `source` (with these, its saved settings) by a command that names a whole
    /// configuration (a `--config` recipe and flags, as a requeued or restarted job repeats its
    /// command): `requested`, provided it equals the saved settings in every setting but those
    /// its ResumeRule lets change (`epochs` may be raised); else the first that differs is refused.
    public func resumed(as requested: TrainingConfig, source: String) throws(SettingError) -> TrainingConfig {
        try checkResume(requested, given: Self.settingKeys.sorted(), source: source)
        return requested
    }

    /// Refuses a resumed run's given settings that its rules do not allow to change.
    func checkResume(_ merged: TrainingConfig, given keys: [String], source: String) throws(SettingError) {
        let (old, new) = (settingObject(), merged.settingObject())
        for key in keys where !Self.sameValue(old[key], new[key]) {
            if Self.resumeRules[key] == .mayGrow, let a = old[key] as? Double, let b = new[key] as? Double, b >= a { continue }
            let rule = Self.resumeRules[key] == .mayGrow ? "it may only be raised" : "a resumed run keeps its settings (only `epochs` may be raised)"
            throw SettingError(key, "given \(Self.text(new[key])), but the run in \(source) was trained with \(Self.text(old[key])); \(rule)")
        }
    }

    /// A setting's value as people write it: `0.005,0.001` for a list, `cosine` for a name, `none`
    /// when not set.
    public static func text(_ value: Any?) -> String {
        guard let value, !(value is NSNull),
              let data = try? JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed]) else { return "none" }
        let json = String(decoding: data, as: UTF8.self)
        return json.filter { !"[]\"".contains($0) }
    }

    /// The default of setting `key`, as `text` writes it.
    public static func defaultText(_ key: String) -> String { text(TrainingConfig().settingObject()[key]) }

    // MARK: Helpers

    static func refuseUnknownKeys(_ object: [String: Any]) throws(SettingError) {
        if let key = object.keys.sorted().first(where: { !settingKeys.contains($0) }) { throw unknown(key) }
    }

    static func unknown(_ key: String) -> SettingError {
        let closest = settingKeys.min { editDistance($0, key) < editDistance($1, key) } ?? ""
        return SettingError(key, "not a setting (the closest is `\(closest)`)")
    }

    static func settingsEncoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return encoder
    }

    /// `value` as a JSON value (what JSONSerialization reads), for setting `key`.
    static func jsonValue(_ value: any Encodable, key: String) throws(SettingError) -> Any {
        do {
            let data = try settingsEncoder().encode(value)
            return try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        } catch {
            throw SettingError(key, "expected a finite value, found \(value)")
        }
    }

    /// Decodes a settings object; a value of the wrong type names its setting.
    static func decode(_ object: [String: Any]) throws(SettingError) -> TrainingConfig {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        do {
            let data = try JSONSerialization.data(withJSONObject: object.filter { !($0.value is NSNull) })
            return try decoder.decode(TrainingConfig.self, from: data)
        } catch let error as DecodingError {
            throw describe(error)
        } catch {
            throw SettingError("settings", "not a JSON object of settings (\(error))")
        }
    }

    static func describe(_ error: DecodingError) -> SettingError {
        func key(_ path: [CodingKey]) -> String { path.first.map { settingKey($0.stringValue) } ?? "settings" }
        switch error {
        case .typeMismatch(let type, let c): return SettingError(key(c.codingPath), "expected \(typeName(type))")
        case .valueNotFound(let type, let c): return SettingError(key(c.codingPath), "expected \(typeName(type))")
        case .keyNotFound(let k, let c): return SettingError(key(c.codingPath + [k]), "missing")
        case .dataCorrupted(let c): return SettingError(key(c.codingPath), c.debugDescription)
        @unknown default: return SettingError("settings", "\(error)")
        }
    }

    static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is Int.Type, is UInt64.Type: return "an integer"
        case is Double.Type: return "a number"
        case is Bool.Type: return "true or false"
        case is String.Type: return "a string"
        default: return "\(type)"
        }
    }

    /// Whether two values of one setting are equal (both from `settingObject()` of decoded
    /// configurations, so equal values have equal JSON).
    static func sameValue(_ a: Any?, _ b: Any?) -> Bool {
        func json(_ v: Any?) -> Data? {
            v.flatMap { try? JSONSerialization.data(withJSONObject: $0, options: [.fragmentsAllowed, .sortedKeys]) }
        }
        return json(a) == json(b)
    }
}

/// The Levenshtein distance between two keys (for "the closest is ...").
func editDistance(_ a: String, _ b: String) -> Int {
    let (x, y) = (Array(a), Array(b))
    var row = Array(0...y.count)
    for i in 1...max(x.count, 1) where !x.isEmpty {
        var previous = row[0]
        row[0] = i
        for j in stride(from: 1, through: y.count, by: 1) {
            let substitution = previous + (x[i - 1] == y[j - 1] ? 0 : 1)
            previous = row[j]
            row[j] = min(substitution, row[j] + 1, row[j - 1] + 1)
        }
    }
    return row[y.count]
}
