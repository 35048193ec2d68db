// Helpers shared by the ConfigFormats tests: parse a string, catch the error.

import ConfigFormats
import Testing

/// The file name every test passes, so error descriptions can be checked whole.
let testFile = "http://prov.example/Config0080F0C571EB.cfg"

func parse(
    _ text: String,
    accepting: Set<ConfigFormat> = [.xml],
    limits: [ConfigFormat: Int] = ConfigParser.defaultLimits
) throws(ConfigFormatError) -> ConfigDocument {
    try ConfigParser.parse(Array(text.utf8), file: testFile, accepting: accepting, limits: limits)
}

/// The error parsing `bytes` throws; records a test failure (and returns nil) when it parses.
func parseError(
    _ bytes: [UInt8],
    accepting: Set<ConfigFormat> = [.xml],
    limits: [ConfigFormat: Int] = ConfigParser.defaultLimits,
    sourceLocation: SourceLocation = #_sourceLocation
) -> ConfigFormatError? {
    do {
        let document = try ConfigParser.parse(bytes, file: testFile, accepting: accepting, limits: limits)
        Issue.record("expected an invalid file, got \(document.entries.count) entries", sourceLocation: sourceLocation)
        return nil
    } catch {
        return error
    }
}

func parseError(
    _ text: String,
    accepting: Set<ConfigFormat> = [.xml],
    limits: [ConfigFormat: Int] = ConfigParser.defaultLimits,
    sourceLocation: SourceLocation = #_sourceLocation
) -> ConfigFormatError? {
    parseError(Array(text.utf8), accepting: accepting, limits: limits, sourceLocation: sourceLocation)
}

/// Joins lines with CRLF and ends the file with CRLF, as Standard Format requires.
func standardFormat(_ lines: [String]) -> String {
    lines.map { $0 + "\r\n" }.joined()
}

let header = "# Panasonic SIP Phone Standard Format File #"
