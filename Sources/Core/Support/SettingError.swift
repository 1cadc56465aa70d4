// SettingError: a setting whose value cannot be used, named the way Core knows settings: by their
// key in configuration files (`batch_size`), never by a command-line flag.
//
// The command line presents it with the flag that sets the value (`--batch-size: ...`), a config
// file with the file and key; Core does not know which. Other settings named inside `problem` are
// written in backticks (`epochs`) so that a presenter renames them the same way.

/// A setting that cannot be used as given: which one, and what is wrong (expected vs found).
public struct SettingError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The setting's key in configuration files, e.g. "batch_size".
    public var setting: String
    /// What is wrong, e.g. "expected at least 1, found 0"; other settings appear as `key`.
    public var problem: String

    public init(_ setting: String, _ problem: String) {
        self.setting = setting
        self.problem = problem
    }

    /// "NAME: problem", with `name` applied to this setting and to every `key` in the problem.
    public func presented(naming name: (String) -> String) -> String {
        var text = ""
        var rest = Substring(problem)
        while let open = rest.firstIndex(of: "`"), let close = rest[rest.index(after: open)...].firstIndex(of: "`") {
            text += rest[..<open] + name(String(rest[rest.index(after: open)..<close]))
            rest = rest[rest.index(after: close)...]
        }
        return "\(name(setting)): \(text)\(rest)"
    }

    /// The error with settings named by their keys, as a configuration file names them.
    public var description: String { presented { $0 } }
}

/// A setting's key in files from its property name: `batchSize` → `batch_size` (JSONEncoder's snake
/// case, for names without acronyms, which is all the settings have).
public func settingKey(_ property: String) -> String {
    property.reduce(into: "") { out, c in
        if c.isUppercase { out += "_" + c.lowercased() } else { out.append(c) }
    }
}
