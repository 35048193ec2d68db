/// `vphone boot` options from `VPHONE_*` environment variables, for containers: `VPHONE_MAC=0080F0C571EB` is
/// `--mac=0080F0C571EB`, `VPHONE_INSECURE=1` is `--insecure`.
///
/// ```swift
/// let args = argumentsWithEnvironment(Array(CommandLine.arguments.dropFirst()), ProcessInfo.processInfo.environment)
/// await VPhone.main(args)
/// ```
///
/// Rules, so that a container's command line always has the last word:
/// - only for the `boot` subcommand (the first argument); any other command line is returned unchanged;
/// - a flag already on the command line (`--mac X` or `--mac=X`) is never added again;
/// - an empty variable counts as unset (compose files often pass `VPHONE_PROV_URL=`);
/// - a value is passed as `--flag=VALUE`, so a value starting with `-` (`VPHONE_TIME_SCALE=-1`) is the flag's
///   value, refused by the flag's own check, never taken for another flag;
/// - a switch (`VPHONE_ONCE`, `VPHONE_INSECURE`, `VPHONE_SNAPSHOT`) is on for `1`, `true`, `yes`, `y`, `on`, off
///   for `0`, `false`, `no`, `n`, `off` (any case); any other value is passed as `--flag=VALUE`, which the parser
///   refuses with exit 64 rather than guessing;
/// - added flags go after the given ones, before a `--`, in the order of `bootEnvironment`.
///
/// An error about an added flag names its variable (`namingEnvironmentSources`), since the command line shows no
/// such flag. `VPHONE_PROFILE` is not here: the profile loader reads it itself, for every command, and refuses a
/// file it cannot read as it refuses `--profile` (exit 65).
func argumentsWithEnvironment(_ args: [String], _ env: [String: String]) -> [String] {
    EnvironmentArguments(args, env).arguments
}

/// A command line with the flags its `VPHONE_*` variables stand for, and where each added flag came from.
struct EnvironmentArguments: Sendable {
    /// The arguments to parse.
    var arguments: [String]
    /// Each flag added, its variable and its value (`--mac` → `VPHONE_MAC`, `zz`), in the order added.
    var sources: [(flag: String, variable: String, value: String)] = []

    init(_ args: [String], _ env: [String: String]) {
        guard args.first == "boot" else {
            arguments = args
            return
        }
        let end = args.firstIndex(of: "--") ?? args.endIndex
        let given = Set(
            args[..<end].compactMap { arg -> String? in
                guard arg.hasPrefix("--") else { return nil }
                return arg.split(separator: "=", maxSplits: 1).first.map(String.init)
            }
        )
        var added: [String] = []
        for option in bootEnvironment where !given.contains(option.flag) {
            guard let raw = env[option.variable], !raw.isEmpty else { continue }
            if option.isSwitch {
                switch raw.lowercased() {
                case "1", "true", "yes", "y", "on": added.append(option.flag)
                case "0", "false", "no", "n", "off": continue
                default: added.append("\(option.flag)=\(raw)")
                }
            } else {
                added.append("\(option.flag)=\(raw)")
            }
            sources.append((option.flag, option.variable, raw))
        }
        arguments = Array(args[..<end]) + added + Array(args[end...])
    }
}

/// `message` with the variables named that set the flags it is about, on its first line: an error about `--mac`
/// on a command line with no `--mac` would otherwise send the reader looking for it.
///
/// A flag is named when the line mentions it (`'--mac <mac>'`, `--time-scale must be ...`, not `--mac` inside
/// `--mac-start`) or mentions its value when the value is a path or URL (has a `/`). Values are never printed
/// (`VPHONE_ADMIN_PASSWORD`).
///
/// ```swift
/// namingEnvironmentSources("Error: The value 'zz' is invalid for '--mac <mac>'", sources)
/// // Error: The value 'zz' is invalid for '--mac <mac>' (--mac is VPHONE_MAC from the environment: correct or unset it)
/// ```
func namingEnvironmentSources(
    _ message: String,
    _ sources: [(flag: String, variable: String, value: String)]
) -> String {
    let lines = message.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false)
    guard let first = lines.first else { return message }
    let line = String(first)
    let named = sources.filter { source in
        mentions(line, flag: source.flag) || (source.value.contains("/") && line.contains(source.value))
    }
    guard !named.isEmpty else { return message }
    let which = named.map { "\($0.flag) is \($0.variable)" }.joined(separator: ", ")
    let fix = named.count == 1 ? "correct or unset it" : "correct or unset them"
    let annotated = line + " (\(which) from the environment: \(fix))"
    return lines.count > 1 ? annotated + "\n" + lines[1] : annotated
}

/// Whether `line` mentions `flag` as a whole word: not `--mac` inside `--mac-start` or `--admin-password` inside
/// `--admin-password-file`.
private func mentions(_ line: String, flag: String) -> Bool {
    func isNamePart(_ character: Character?) -> Bool {
        guard let character else { return false }
        return character.isLetter || character.isNumber || character == "-"
    }
    var rest = line[...]
    while let range = rest.range(of: flag) {
        let before = range.lowerBound > line.startIndex ? line[line.index(before: range.lowerBound)] : nil
        let after = range.upperBound < line.endIndex ? line[range.upperBound] : nil
        if !isNamePart(before), !isNamePart(after) { return true }
        rest = line[range.upperBound...]
    }
    return false
}

/// One `VPHONE_*` variable and the `vphone boot` flag it stands for.
struct EnvironmentOption: Sendable {
    var variable: String
    var flag: String
    /// A flag without a value (`--once`), set by a yes/no variable.
    var isSwitch: Bool

    init(_ flag: String, isSwitch: Bool = false) {
        self.flag = flag
        self.isSwitch = isSwitch
        // --dhcp-option66 -> VPHONE_DHCP_OPTION66
        variable = "VPHONE_" + String(flag.dropFirst(2).uppercased().map { $0 == "-" ? "_" : $0 })
    }
}

/// Every option of `vphone boot`, as a variable: `VPHONE_` + the flag in capitals, `-` as `_`.
let bootEnvironment: [EnvironmentOption] = [
    // which phone
    EnvironmentOption("--mac"),
    EnvironmentOption("--flash"),
    // where it finds its provisioning server
    EnvironmentOption("--prov-url"),
    EnvironmentOption("--dhcp-option160"),
    EnvironmentOption("--dhcp-option159"),
    EnvironmentOption("--dhcp-option66"),
    EnvironmentOption("--sip-pnp-url"),
    // how it runs
    EnvironmentOption("--once", isSwitch: true),
    EnvironmentOption("--time-scale"),
    EnvironmentOption("--duration"),
    EnvironmentOption("--snapshot", isSwitch: true),
    EnvironmentOption("--record"),
    EnvironmentOption("--replay"),
    // TLS
    EnvironmentOption("--ca-file"),
    EnvironmentOption("--insecure", isSwitch: true),
    // the control API
    EnvironmentOption("--http-port"),
    EnvironmentOption("--http-bind"),
    EnvironmentOption("--admin-password"),
    EnvironmentOption("--admin-password-file"),
    // logging
    EnvironmentOption("--log-format"),
    EnvironmentOption("--log-level"),
]
