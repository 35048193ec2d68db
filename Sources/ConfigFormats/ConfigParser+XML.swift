// The `<PANASIPPhoneConfig>` XML reader, and the one place in vphone that calls libxml2 (ARCHITECTURE rule 3,
// STYLE 3: every parse goes through `LibXML2.parse`, which owns and frees the parser context and turns libxml2's
// errors into `ConfigFormatError`s).
//
// libxml2 runs in SAX2 mode: the callbacks below see each element as it is read, so no DOM tree is built and freed
// for every file (fleet mode parses tens of thousands). A parameter is an element without element children; the
// name of any other element means nothing, except <Initial>, <Device> and <Line idx="n"> (spec §2).

internal import CLibXML2

extension ConfigParser {
    /// The `<PANASIPPhoneConfig>` XML reader (spec §2) for every file the plain-XML scanner gives up on
    /// (ConfigParser+PlainXML.swift): it gives the scanner's document or names the error. Alone, it checks the scanner.
    package static func parseXMLWithLibXML2(
        _ bytes: [UInt8],
        file: String
    ) throws(ConfigFormatError)
        -> ConfigDocument
    {
        let reader = try LibXML2.parse(bytes, file: file)
        return reader.entries.document(hasInitialSection: reader.hasInitialSection)
    }
}

// MARK: - The libxml2 funnel

/// libxml2 wants `xmlInitParser` once, before any thread parses; a global is initialised exactly once.
private let libxml2Initialised: Void = xmlInitParser()

private enum LibXML2 {
    /// spec §2 and STYLE: no network, no entity expansion (no XML_PARSE_NOENT), no DTD loading, no "huge" mode;
    /// errors are collected through the structured error hook instead of being printed.
    static let options = Int32(XML_PARSE_NONET.rawValue | XML_PARSE_NOERROR.rawValue | XML_PARSE_NOWARNING.rawValue)

    /// Runs libxml2 over `bytes` with the reader's callbacks; returns the reader once the whole file is read, or
    /// throws the first reason the file is invalid.
    static func parse(_ bytes: [UInt8], file: String) throws(ConfigFormatError) -> TreeReader {
        _ = libxml2Initialised
        guard bytes.count <= Int(Int32.max) else {
            throw ConfigFormatError(file: file, line: nil, reason: "file is too large for libxml2", kind: .tooLarge)
        }
        guard let context = xmlNewParserCtxt() else {
            throw ConfigFormatError(
                file: file,
                line: nil,
                reason: "out of memory: libxml2 could not create a parser",
                kind: .other
            )
        }
        defer { xmlFreeParserCtxt(context) }
        let reader = UnsafeMutablePointer<TreeReader>.allocate(capacity: 1)
        reader.initialize(to: TreeReader(file: file, size: bytes.count))
        defer {
            reader.deinitialize(count: 1)
            reader.deallocate()
        }
        context.pointee._private = UnsafeMutableRawPointer(reader)  // "for user data, libxml won't touch it"
        // Only these callbacks: no DOM building. The handler belongs to the context, which frees it.
        var handler = xmlSAXHandler()
        handler.initialized = UInt32(XML_SAX2_MAGIC)
        handler.startElementNs = startElement
        handler.endElementNs = endElement
        handler.characters = characters
        handler.ignorableWhitespace = characters
        handler.cdataBlock = characters
        handler.internalSubset = refuseDoctype
        handler.serror = recordError
        context.pointee.sax.pointee = handler
        vphone_xml_silence_generic_errors()

        let document = bytes.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { chars in
                xmlCtxtReadMemory(context, chars.baseAddress, Int32(chars.count), nil, nil, options)
            }
        }
        if let document { xmlFreeDoc(document) }  // none without the DOM callbacks; freed should one appear

        if let stop = reader.pointee.stop { throw stop }
        if let encoding = failedEncoding(context) {
            // Found only here: libxml2 reports it on its generic channel, then stops as if the file ended.
            let line = (reader.pointee.firstFatal ?? reader.pointee.firstError)?.line ?? 0
            throw ConfigFormatError(
                file: file,
                line: line > 0 ? line : nil,
                reason: encoding.isEmpty
                    ? "not well-formed XML: the bytes are not valid in the encoding the file starts with (its byte "
                        + "order mark): save the file as UTF-8"
                    : "not well-formed XML: the bytes are not valid \(encoding), the encoding its <?xml ...?> "
                        + "declaration names: save the file as UTF-8 and remove encoding=\"\(encoding)\" (or declare "
                        + "the encoding the file is really in)",
                kind: .malformed
            )
        }
        guard context.pointee.wellFormed != 0 else {
            let failure =
                reader.pointee.firstFatal ?? reader.pointee.firstError
                ?? Failure(xmlCtxtGetLastError(context)) ?? Failure(code: 0, line: 0, message: "unknown error")
            let (line, reason) = failure.explained()
            throw ConfigFormatError(file: file, line: line > 0 ? line : nil, reason: reason, kind: .malformed)
        }
        guard reader.pointee.sawRoot else {
            throw ConfigFormatError(
                file: file,
                line: nil,
                reason: "not well-formed XML: no root element",
                kind: .malformed
            )
        }
        return reader.pointee  // a copy (the arrays are shared, not copied); the defer above frees the original
    }
}

/// The encoding the file declared (empty when only a byte order mark gave it), when converting its bytes from it
/// failed (libxml2 marks the input buffer).
private func failedEncoding(_ context: xmlParserCtxtPtr) -> String? {
    guard let buffer = context.pointee.input?.pointee.buf, buffer.pointee.error == Int32(XML_IO_ENCODER.rawValue)
    else { return nil }
    let declared = context.pointee.input?.pointee.encoding ?? context.pointee.encoding
    return declared.map { String(cString: $0) } ?? ""
}

// MARK: - The reader behind the SAX callbacks

/// What the callbacks build while libxml2 reads; they reach it through the parser context's `_private`.
private struct TreeReader {
    /// An element that is open: where it is and what it means. Plain values only, so the stack costs no
    /// reference counting.
    struct Frame {
        enum Role { case root, initial, device, line, other }
        /// The element name, interned in the parser's dictionary (alive until the context is freed).
        var name: UnsafePointer<xmlChar>
        var prefix: UnsafePointer<xmlChar>?
        var line: Int
        var role: Role
        var inInitial: Bool
        /// The enclosing `<Line idx>`: its index and source line.
        var lineIndex: (index: Int, at: Int)?
        var hasElementChild = false
    }

    let file: String
    var frames: [Frame] = []
    /// Text read since the last tag, and the line of its first non-blank byte.
    var text: [UInt8] = []
    var textLine: Int?
    /// The perm and access attributes of the innermost open element: only it can still turn out to be a leaf.
    var perm = ""
    var access = ""
    var entries: XMLEntries
    var hasInitialSection = false
    var sawRoot = false
    /// The first libxml2 error (libxml2 goes on after a fatal error and reports knock-on errors, so its own
    /// "last error" is usually not the cause).
    var firstFatal: Failure?
    var firstError: Failure?
    /// Our own reason to stop: a DOCTYPE, the wrong root, a bad `<Line>`.
    var stop: ConfigFormatError?

    init(file: String, size: Int) {
        self.file = file
        entries = XMLEntries(size: size)
        frames.reserveCapacity(8)
        text.reserveCapacity(256)
    }

    mutating func start(
        _ name: UnsafePointer<xmlChar>,
        prefix: UnsafePointer<xmlChar>?,
        attributes: Attributes,
        line: Int
    ) -> ConfigFormatError? {
        guard !frames.isEmpty else {
            // spec §2: the root is <PANASIPPhoneConfig>, anything else is an invalid file.
            guard prefix == nil && nameIs(name, "PANASIPPhoneConfig") else {
                return ConfigFormatError(
                    file: file,
                    line: line,
                    reason: "the root element is <\(qualifiedName(name, prefix))>; a configuration file's root "
                        + "element must be <PANASIPPhoneConfig>",
                    kind: .wrongRoot
                )
            }
            sawRoot = true
            frames.append(Frame(name: name, line: line, role: .root, inInitial: false))
            return nil
        }
        let parent = frames.count - 1
        flushStrayText(in: frames[parent])
        frames[parent].hasElementChild = true
        perm = ""
        access = ""

        var frame = Frame(
            name: name,
            prefix: prefix,
            line: line,
            role: .other,
            inInitial: frames[parent].inInitial,
            lineIndex: frames[parent].lineIndex
        )
        if prefix == nil && nameIs(name, "Line") {
            frame.role = .line
            switch lineIndex(attributes, line: line) {
            case .failure(let error): return error
            case .success(let index):
                if let outer = frames[parent].lineIndex {
                    return ConfigFormatError(
                        file: file,
                        line: line,
                        reason: "<Line idx=\"\(index)\"> is inside <Line idx=\"\(outer.index)\"> from line "
                            + "\(outer.at); close the first <Line> before opening the next",
                        kind: .structure
                    )
                }
                frame.lineIndex = (index, line)
            }
        } else if prefix == nil && nameIs(name, "Initial") {
            frame.role = .initial
            frame.inInitial = true
            hasInitialSection = true
        } else if prefix == nil && nameIs(name, "Device") {
            frame.role = .device
        } else {
            // spec §2/§4: perm and access are kept verbatim for the merge rules.
            for index in 0..<attributes.count {
                if nameIs(attributes.name(index), "perm") {
                    perm = attributes.value(index)
                } else if nameIs(attributes.name(index), "access") {
                    access = attributes.value(index)
                }
            }
        }
        frames.append(frame)
        return nil
    }

    mutating func end() {
        guard let frame = frames.popLast() else { return }
        if frame.role == .other && !frame.hasElementChild {
            // A leaf: a parameter. spec §2: inside <Line idx="n"> it is NAME_n, as in the text format.
            var name = qualifiedName(frame.name, frame.prefix)
            if let lineIndex = frame.lineIndex {
                name.append("_")
                name.append(String(lineIndex.index))
            }
            let entry = ConfigEntry(
                name: name,
                value: String(decoding: text, as: UTF8.self),
                perm: perm,
                access: access,
                line: frame.line,
                section: frame.inInitial ? .initial : .device
            )
            entries.add(entry)
            if !text.isEmpty { text.removeAll(keepingCapacity: true) }
            textLine = nil
        } else {
            flushStrayText(in: frame)
        }
    }

    mutating func append(_ characters: UnsafeBufferPointer<UInt8>, currentLine: Int) {
        let first = textLine == nil ? characters.firstIndex(where: { !ConfigParser.isBlank($0) }) : nil
        // Inside a group only visible text matters (for the warning): skip the layout whitespace between elements.
        if first == nil && textLine == nil && frames.last?.hasElementChild == true { return }
        if let first {
            // libxml2 hands text over once it has read it: count back from the current line.
            textLine = currentLine - characters[first...].count(where: { $0 == UInt8(ascii: "\n") })
        }
        text.append(contentsOf: characters)
    }

    /// Text between the elements of a group is ignored; say so unless it is only layout whitespace.
    private mutating func flushStrayText(in group: Frame) {
        defer {
            if !text.isEmpty { text.removeAll(keepingCapacity: true) }
            textLine = nil
        }
        guard let textLine, let first = text.firstIndex(where: { !ConfigParser.isBlank($0) }),
            let last = text.lastIndex(where: { !ConfigParser.isBlank($0) })
        else { return }
        entries.warnings.append(
            ConfigWarning(
                line: textLine,
                message: "text \(ConfigParser.quoted(text[first...last].prefix(30))) inside "
                    + "<\(qualifiedName(group.name, group.prefix))> is ignored: only an element without child "
                    + "elements holds a value"
            )
        )
    }

    /// The `idx` of a `<Line>`: a whole number from 1 to 99 (spec §2).
    private func lineIndex(_ attributes: Attributes, line: Int) -> Result<Int, ConfigFormatError> {
        guard let position = (0..<attributes.count).first(where: { nameIs(attributes.name($0), "idx") }) else {
            return .failure(
                ConfigFormatError(
                    file: file,
                    line: line,
                    reason: "<Line> has no idx attribute; write <Line idx=\"1\"> for line 1 (idx is a whole number "
                        + "from 1 to 99)",
                    kind: .structure
                )
            )
        }
        let text = attributes.value(position)
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
            let index = Int(text), (1...99).contains(index)
        else {
            return .failure(
                ConfigFormatError(
                    file: file,
                    line: line,
                    reason: "<Line idx=\"\(text)\">: idx must be a whole number from 1 to 99",
                    kind: .structure
                )
            )
        }
        return .success(index)
    }
}

/// The attributes libxml2 passes to `startElementNs`: five pointers each (local name, prefix, URI, value start,
/// value end).
private struct Attributes {
    let base: UnsafeMutablePointer<UnsafePointer<xmlChar>?>?
    let count: Int

    func name(_ index: Int) -> UnsafePointer<xmlChar>? { base?[5 * index] }

    /// The value as written, entities decoded. Without entity substitution libxml2 hands a literal `&` over as
    /// `&#38;` (it is meant to be decoded again by the DOM builder), so turn those back.
    func value(_ index: Int) -> String {
        guard let base, let start = base[5 * index + 3], let end = base[5 * index + 4], end >= start else {
            return ""
        }
        let bytes = UnsafeBufferPointer(start: start, count: end - start)
        guard bytes.contains(UInt8(ascii: "&")) else { return String(decoding: bytes, as: UTF8.self) }
        let ampersand: [UInt8] = Array("&#38;".utf8)
        var decoded: [UInt8] = []
        var index = 0
        while index < bytes.count {
            if bytes[index...].starts(with: ampersand) {
                decoded.append(UInt8(ascii: "&"))
                index += ampersand.count
            } else {
                decoded.append(bytes[index])
                index += 1
            }
        }
        return String(decoding: decoded, as: UTF8.self)
    }
}

// MARK: - SAX callbacks (C function pointers: no captures, state through the context)

/// The reader of the context libxml2 passes as user data (for a parser context, user data is the context itself).
private func reader(_ userData: UnsafeMutableRawPointer?) -> (xmlParserCtxtPtr, UnsafeMutablePointer<TreeReader>)? {
    guard let userData else { return nil }
    let context = userData.assumingMemoryBound(to: xmlParserCtxt.self)
    guard let reader = context.pointee._private?.assumingMemoryBound(to: TreeReader.self) else { return nil }
    return (context, reader)
}

private func currentLine(_ context: xmlParserCtxtPtr) -> Int { Int(context.pointee.input?.pointee.line ?? 0) }

private func startElement(
    _ userData: UnsafeMutableRawPointer?,
    _ localName: UnsafePointer<xmlChar>?,
    _ prefix: UnsafePointer<xmlChar>?,
    _ uri: UnsafePointer<xmlChar>?,
    _ namespaceCount: Int32,
    _ namespaces: UnsafeMutablePointer<UnsafePointer<xmlChar>?>?,
    _ attributeCount: Int32,
    _ defaultedCount: Int32,
    _ attributes: UnsafeMutablePointer<UnsafePointer<xmlChar>?>?
) {
    guard let (context, reader) = reader(userData), let localName, reader.pointee.stop == nil else { return }
    let list = Attributes(base: attributes, count: Int(attributeCount))
    if let error = reader.pointee.start(localName, prefix: prefix, attributes: list, line: currentLine(context)) {
        reader.pointee.stop = error
        xmlStopParser(context)
    }
}

private func endElement(
    _ userData: UnsafeMutableRawPointer?,
    _ localName: UnsafePointer<xmlChar>?,
    _ prefix: UnsafePointer<xmlChar>?,
    _ uri: UnsafePointer<xmlChar>?
) {
    guard let (_, reader) = reader(userData) else { return }
    reader.pointee.end()
}

private func characters(_ userData: UnsafeMutableRawPointer?, _ bytes: UnsafePointer<xmlChar>?, _ count: Int32) {
    guard let (context, reader) = reader(userData), let bytes, count > 0 else { return }
    reader.pointee.append(UnsafeBufferPointer(start: bytes, count: Int(count)), currentLine: currentLine(context))
}

/// Called when `<!DOCTYPE name ...` has been read, before any internal subset: note it and stop, so no entity
/// declaration is ever parsed (spec §2 / STYLE: a DOCTYPE can declare entities, as in billion laughs, or fetch a
/// DTD).
private func refuseDoctype(
    _ userData: UnsafeMutableRawPointer?,
    _ name: UnsafePointer<xmlChar>?,
    _ externalID: UnsafePointer<xmlChar>?,
    _ systemID: UnsafePointer<xmlChar>?
) {
    guard let (context, reader) = reader(userData) else { return }
    if reader.pointee.stop == nil {
        reader.pointee.stop = ConfigFormatError(
            file: reader.pointee.file,
            line: currentLine(context),
            reason: "DOCTYPE is not allowed in a configuration file (it can declare entities and load DTDs); "
                + "remove the <!DOCTYPE ...> declaration",
            kind: .doctype
        )
    }
    xmlStopParser(context)
}

/// The structured error hook: keeps the first error and the first fatal error.
private func recordError(_ userData: UnsafeMutableRawPointer?, _ error: xmlErrorPtr?) {
    guard let (context, reader) = reader(userData), let error,
        error.pointee.level.rawValue >= XML_ERR_ERROR.rawValue
    else { return }
    let isFatal = error.pointee.level == XML_ERR_FATAL
    if isFatal ? reader.pointee.firstFatal != nil : reader.pointee.firstError != nil { return }
    guard var failure = Failure(error) else { return }
    if failure.code == Int32(XML_ERR_GT_REQUIRED.rawValue) && failure.str1 == nil {
        failure.unclosedEndTag = unclosedEndTag(context, errorLine: failure.line)
    }
    if isFatal {
        reader.pointee.firstFatal = failure
    } else {
        reader.pointee.firstError = failure
    }
}

/// libxml2 says "expected '>'" where the next tag starts, one line or more after an end tag missing its `>`
/// (the seed's `</CFG_PRODUCT_FILE_PATH`). Looks back from the error position for `</NAME` to name the tag and
/// its line; nil when the bytes before are not that.
private func unclosedEndTag(_ context: xmlParserCtxtPtr, errorLine: Int) -> (name: String, line: Int)? {
    guard let input = context.pointee.input, let base = input.pointee.base, let current = input.pointee.cur,
        current >= base
    else { return nil }
    var position = current
    var newlines = 0
    while position > base && ConfigParser.isBlank(position[-1]) {
        if position[-1] == UInt8(ascii: "\n") { newlines += 1 }
        position -= 1
    }
    let nameEnd = position
    while position > base && !ConfigParser.isBlank(position[-1]) && position[-1] != UInt8(ascii: "<")
        && position[-1] != UInt8(ascii: "/") && position[-1] != UInt8(ascii: ">")
    {
        position -= 1
    }
    guard position < nameEnd, position - base >= 2, position[-1] == UInt8(ascii: "/"),
        position[-2] == UInt8(ascii: "<")
    else { return nil }
    let name = String(decoding: UnsafeBufferPointer(start: position, count: nameEnd - position), as: UTF8.self)
    return (name, errorLine - newlines)
}

// MARK: - libxml2 errors in words

/// The parts of an `xmlError` needed to explain it, copied out while libxml2 still owns the strings.
private struct Failure {
    var code: Int32
    var line: Int
    var message: String
    var str1: String?
    var str2: String?
    var int1: Int = 0
    var unclosedEndTag: (name: String, line: Int)?

    init(code: Int32, line: Int, message: String) {
        self.code = code
        self.line = line
        self.message = message
    }

    init?(_ error: UnsafePointer<xmlError>?) {
        guard let error, error.pointee.code != 0 else { return nil }
        code = error.pointee.code
        line = Int(error.pointee.line)
        message = error.pointee.message.map { String(cString: $0) } ?? "error \(error.pointee.code)"
        str1 = error.pointee.str1.map { String(cString: $0) }
        str2 = error.pointee.str2.map { String(cString: $0) }
        int1 = Int(error.pointee.int1)
    }

    init?(_ error: xmlErrorPtr?) { self.init(UnsafePointer(error)) }

    /// The line to report and a reason that says what is wrong and how to fix it, keeping libxml2's own words.
    func explained() -> (line: Int, reason: String) {
        let libxml2 = message.split(whereSeparator: { $0 == "\n" || $0 == "\r" })
            .map { $0.trimmingBlanks() }.filter { !$0.isEmpty }.joined(separator: "; ")
        var line = self.line
        var meaning: String?
        let ampersand =
            "a '&' in a value must be written &amp; (XML knows only &amp; &lt; &gt; &quot; &apos; "
            + "and &#NN;)"
        switch UInt32(bitPattern: code) {
        case XML_ERR_GT_REQUIRED.rawValue:
            if let tag = unclosedEndTag {
                meaning = "the end tag </\(tag.name) is not closed: add '>' right after the name"
                line = tag.line
            } else if let name = str1 {
                meaning = "the start tag <\(name) is not closed: add '>' after its attributes"
                if int1 > 0 { line = int1 }
            } else {
                meaning = "a tag is not closed (expected '>')"
            }
        case XML_ERR_TAG_NAME_MISMATCH.rawValue:
            if let open = str1, let close = str2 {
                meaning =
                    "the end tag </\(close)> does not match the open element <\(open)> from line \(int1) "
                    + "(an end tag is missing, misspelt or doubled)"
            }
        case XML_ERR_TAG_NOT_FINISHED.rawValue:
            if let open = str1 { meaning = "the element <\(open)> from line \(int1) is never closed: add </\(open)>" }
        case XML_ERR_DOCUMENT_END.rawValue:
            meaning =
                "there is more after the end of the root element (a file holds exactly one "
                + "<PANASIPPhoneConfig>...</PANASIPPhoneConfig>; look for an extra end tag)"
        case XML_ERR_DOCUMENT_EMPTY.rawValue:
            meaning = "no root element"
        case XML_ERR_ENTITYREF_SEMICOL_MISSING.rawValue, XML_ERR_UNDECLARED_ENTITY.rawValue,
            XML_WAR_UNDECLARED_ENTITY.rawValue:
            meaning = ampersand
        case XML_ERR_NAME_REQUIRED.rawValue:
            if message.contains("EntityRef") {
                meaning = ampersand
            } else if message.contains("StartTag") {
                meaning = "a '<' that does not start a tag: write '<' in a value as &lt;"
            }
        case XML_ERR_INVALID_CHAR.rawValue, XML_ERR_INVALID_ENCODING.rawValue:
            meaning =
                message.contains("UTF-8")
                ? "the file is not valid UTF-8: save it as UTF-8 (or declare its encoding in <?xml ...?>)"
                : "a character XML does not allow (control characters other than tab, CR and LF)"
        case XML_ERR_ATTRIBUTE_NOT_STARTED.rawValue:
            meaning = "attribute values must be in quotes, as in perm=\"R\""
        case XML_ERR_ATTRIBUTE_WITHOUT_VALUE.rawValue:
            meaning = "an attribute has no value; write it as name=\"value\""
        case XML_ERR_ATTRIBUTE_REDEFINED.rawValue:
            meaning = "the attribute \(str1 ?? "") appears twice in one tag"
        case XML_ERR_RESERVED_XML_NAME.rawValue:
            meaning = "the <?xml ...?> declaration must be the very first thing in the file"
        default:
            if message.contains("Excessive depth") { meaning = "elements are nested more than 256 deep" }
        }
        guard let meaning else { return (line, "not well-formed XML: \(libxml2)") }
        return (line, "not well-formed XML: \(meaning) (libxml2: \(libxml2))")
    }
}

extension Substring {
    fileprivate func trimmingBlanks() -> String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { $0 != " " && $0 != "\t" }),
            let last = scalars.lastIndex(where: { $0 != " " && $0 != "\t" })
        else { return "" }
        return String(scalars[first...last])
    }
}

// MARK: - Name helpers

/// Compares a libxml2 name with an ASCII literal without making a String.
private func nameIs(_ name: UnsafePointer<xmlChar>?, _ literal: StaticString) -> Bool {
    guard let name else { return false }
    let count = literal.utf8CodeUnitCount
    let bytes = literal.utf8Start
    for offset in 0..<count where name[offset] != bytes[offset] { return false }
    return name[count] == 0
}

/// `prefix:name`, or `name` without a prefix.
private func qualifiedName(_ name: UnsafePointer<xmlChar>, _ prefix: UnsafePointer<xmlChar>?) -> String {
    guard let prefix else { return String(cString: name) }
    return String(cString: prefix) + ":" + String(cString: name)
}
