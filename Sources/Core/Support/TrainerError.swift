// TrainerError: the one error type the trainer reports to users.
//
// Every failure a user can cause (bad flag, bad file, bad checkpoint) becomes one of these, with a
// message that fits on one line and names the culprit: the file or flag, what was expected and what
// was found. It is not for programming errors; those stay preconditions.

/// A user-facing failure with a one-line, self-explanatory message.
public struct TrainerError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The message, without a trailing newline; names the file or flag and expected vs found.
    public let message: String
    /// True when every rank of the job raised this same error together (see `Collective.agree`),
    /// so one rank may report it for all and every rank can exit cleanly.
    public var agreed: Bool
    /// The process exit status this failure should end with (1, or 128 + signal for interruptions).
    public var exitCode: Int32

    public init(_ message: String, agreed: Bool = false, exitCode: Int32 = 1) {
        self.message = message
        self.agreed = agreed
        self.exitCode = exitCode
    }

    public var description: String { message }
}
