import ConfigFormats
import Testing
import VPhoneTesting

@testable import PhoneCore

/// A fleet's phones share one `PreparedProfile(sharing: true)`: their saved bodies are deltas against a shared
/// reference, their configurations are layered over a shared base, and the merge of the shared files is kept. None of
/// that may change what a phone is: every phone must end with the flash, events and reports of a phone alone.
@Suite("Fleet sharing")
struct FleetSharingTests {
    static let product = Fixture.device(
        (1...40).map { ("PRODUCT_SETTING_NUMBER_\($0)", "product value \($0)", $0 % 9 == 0 ? "!" : nil) }
            + [("SIP_AUTHID_1", "prod", nil), ("NTP_ADDR", "ntp.product", "!"), ("PHONEBOOK_NAME3", "p", nil)]
    )
    static let master = Fixture.device(
        (1...40).map { ("MASTER_SETTING_NUMBER_\($0)", "master value \($0)", nil) }
            + [("NTP_ADDR", "ntp.master", nil), ("SYSLOG_ADDR", "syslog.master", "!"), ("CFG_RTRY_INTVL", "5", nil)]
    )

    /// A phone's own (standard) file as `prepared` reads it.
    static func readOwn(
        _ text: String,
        _ prepared: PreparedProfile
    ) throws -> (document: ConfigDocument, run: MergeRun?) {
        let parsed = try prepared.parsed(Array(text.utf8), file: "standard", kind: .standard)
        return (parsed.document, parsed.run)
    }

    /// The entries of the run the document `parse` makes of `text` gives: what a phone's own file's run must hold.
    static func entriesOfItsDocument(_ text: String) throws -> ContiguousArray<ParameterTable.Entry> {
        MergeRun(try ConfigParser.parse(Array(text.utf8), file: "standard"), interned: true, common: false).device
    }

    static func standard(_ i: Int, generation: Int = 0) -> String {
        var entries: [(String, String)] = (1...60).map { k in
            ("PHONEBOOK_NAME\(k)", k % 4 == 0 ? "Contact \(k) of phone \(i) gen \(generation)" : "Contact \(k)")
        }
        entries += [("SIP_AUTHID_1", "100\(i)"), ("DISPLAY_NAME_1", "Phone \(i)")]
        // Values the phone reads from the standard file while the cycle runs: the next fetches' User-Agent and
        // credentials, and the file key. A phone whose file has the last one's names has no document made for it:
        // these must come from its run.
        entries += [
            ("HTTP_USER_AGENT", "Fleet-{MAC}-\(i)"), ("HTTP_AUTH_ID", "user\(i)"), ("HTTP_AUTH_PASSWORD", "pass\(i)"),
            ("CFG_FILE_KEY", "key-of-phone-\(i)-0123456789abcdef"),
        ]
        // Phone 3's file has names of its own: the merge plan kept for the template's names must not be used for
        // it, nor its own plan for phone 4.
        if i == 3 { entries += [("AAA_FIRST_NAME", "only phone 3"), ("NTP_ADDR", "ntp.phone3")] }
        // Phone 5's file has the template's names in another order: the name order kept from phone 4's file (by
        // file position) must not be used for it.
        if i == 5 { entries.reverse() }
        return Fixture.device(entries)
    }

    static func phone(_ i: Int, prepared: PreparedProfile?) -> SimulatedPhone {
        let mac = MAC(value: 0x0080_F000_0001 + UInt64(i))
        var phone = threeFilePhone(
            standard: standard(i),
            product: product,
            master: master,
            mac: mac,
            prepared: prepared
        )
        phone.machine.debugEvents = false
        return phone
    }

    @Test("phones sharing a prepared profile end exactly like phones alone, through edits and fallbacks")
    func sharingChangesNothingAPhoneShows() throws {
        let shared = PreparedProfile(TestProfiles.utg300, sharing: true)
        for i in 0..<7 {
            var alone = Self.phone(i, prepared: nil)
            var fleet = Self.phone(i, prepared: shared)
            func both(_ step: (inout SimulatedPhone) -> Void) {
                step(&alone)
                step(&fleet)
                #expect(alone.flash == fleet.flash)
                #expect(alone.fetched == fleet.fetched)
                #expect(alone.events == fleet.events && alone.reports == fleet.reports)
                #expect(alone.flash.parameters.dictionary == fleet.flash.parameters.dictionary)
                for kind in FileKind.allCases {
                    #expect(alone.flash.savedFiles[kind]?.body == fleet.flash.savedFiles[kind]?.body)
                }
                #expect(
                    ConfigView.effective(profile: TestProfiles.utg300, snapshot: alone.flash)
                        == ConfigView.effective(profile: TestProfiles.utg300, snapshot: fleet.flash)
                )
            }
            both { $0.powerOn() }
            // A local edit over a shared value, one a later "!" overrides, one of the phone's own.
            both { _ = $0.send(.localEdit(name: "PRODUCT_SETTING_NUMBER_9", value: "mine")) }
            both { _ = $0.send(.localEdit(name: "PHONEBOOK_NAME2", value: "edited")) }
            both { _ = $0.send(.localEdit(name: "NTP_ADDR", value: "ntp.local")) }
            both { _ = $0.send(.resyncRequested(reason: "test")) }
            // The product file is gone and the standard file changed: the saved product copy stands in.
            both { phone in
                phone.server[prod] = .notFound()
                phone.server["\(base)/Config\(phone.flash.identity.mac.upper).cfg"] = .file(
                    Self.standard(i, generation: 1)
                )
                phone.reboot()
                phone.machine.debugEvents = false
                phone.powerOn()
            }
            #expect(fleet.reports.last?.files[.product]?.outcome == .fellBack)
            // And the sharing did happen: a layered table, and deltas for the saved copies.
            #expect(fleet.flash.parameters.base != nil && fleet.flash.parameters.entries.count < 80)
            for kind in [FileKind.standard, .master] {
                guard case .delta(_, let ops, let count) = fleet.flash.savedFiles[kind]?.savedBody.storage else {
                    Issue.record("the saved \(kind) file is not a delta")
                    continue
                }
                #expect(ops.count * 4 < count)
            }
        }
    }

    @Test("a full document memo makes room for a file shared later: phones' own files seen again do not keep it out")
    func documentMemoMakesRoomForANewSharedFile() throws {
        let prepared = PreparedProfile(TestProfiles.utg300, sharing: true)
        let master = Array(Fixture.device([("NTP_ADDR", "ntp.master")]).utf8)
        for _ in 0..<6 { _ = try prepared.parsed(master, file: "master", kind: .master) }
        #expect(prepared.documents.holds(master))
        // More phones than the memo holds resync, each with a product file of its own (a {MAC} in its path): each
        // one is seen a second time.
        for i in 0..<(DocumentCache.maxHot + 50) {
            let own = Array(Fixture.device([("SIP_AUTHID_1", "\(1000 + i)")]).utf8)
            for _ in 0..<2 { _ = try prepared.parsed(own, file: "product", kind: .product) }
        }
        // The file every phone found stays through the sweep that made room.
        #expect(prepared.documents.holds(master))
        // The master file changes on the server: two phones download it, and every later phone must find it kept
        // (one document and merge run for all, so the merge of the shared files is kept too).
        let changed = Array(Fixture.device([("NTP_ADDR", "ntp.changed")]).utf8)
        _ = try prepared.parsed(changed, file: "master", kind: .master)
        let second = try prepared.parsed(changed, file: "master", kind: .master)
        #expect(prepared.documents.holds(changed))
        let third = try prepared.parsed(changed, file: "master", kind: .master)
        #expect(second.run != nil && third.run === second.run)
    }

    @Test(
        "bodies of one kind taken in turns each find their own entry; a body like the last but not the same has its own"
    )
    func documentMemoComparesTheLastBodyOfItsKind() throws {
        let prepared = PreparedProfile(TestProfiles.utg300, sharing: true)
        // Two product files of the same size (one per model group), both kept, then taken in turns; a master file
        // with the same bytes as one of them finds that one's entry.
        let bodies = ["ntp.one", "ntp.two"].map { Array(Fixture.device([("NTP_ADDR", $0)]).utf8) }
        for body in bodies {
            for _ in 0..<2 { _ = try prepared.parsed(body, file: "product", kind: .product) }
        }
        var runs: [MergeRun?] = []
        for round in 0..<6 {
            let body = bodies[round % 2]
            let found = try prepared.parsed(body, file: "product", kind: .product)
            #expect(found.document == (try ConfigParser.parse(body, file: "product")), "round \(round)")
            runs.append(found.run)
        }
        #expect(runs[0] != nil && runs[2] === runs[0] && runs[4] === runs[0])
        #expect(runs[1] != nil && runs[3] === runs[1] && runs[1] !== runs[0])
        let master = try prepared.parsed(bodies[1], file: "master", kind: .master)
        #expect(master.run === runs[1] && master.document.device["NTP_ADDR"]?.value == "ntp.two")
    }

    @Test("phones with their own standard files find the merge of the shared files made by an earlier phone")
    func sharedMergeIsFoundByTheNextPhones() {
        let shared = PreparedProfile(TestProfiles.utg300, sharing: true)
        for i in 0..<4 {
            var phone = Self.phone(i, prepared: shared)
            phone.powerOn()
            #expect(phone.reports.last?.outcome == .provisioned)
        }
        // Phone 0 sees the shared files first, phone 1 makes their merge, phones 2 and 3 find it: the standard file's
        // run is not part of what is shared, or no phone would.
        #expect(shared.merges.hits.load(ordering: .relaxed) >= 2)
    }

    @Test("a phone's own file with the last one's names: no document is made, and its run answers as the document")
    func ownFileWithTheLastNamesHasItsRunStandForItsDocument() throws {
        let prepared = PreparedProfile(TestProfiles.utg300, sharing: true)
        func parsed(_ text: String) throws -> (document: ConfigDocument, run: MergeRun?) {
            try Self.readOwn(text, prepared)
        }
        let first = try parsed(Self.standard(1))
        #expect(first.run?.standsForDocument == false && !first.document.device.isEmpty)
        let second = try parsed(Self.standard(2))
        let reference = try ConfigParser.parse(Array(Self.standard(2).utf8), file: "standard")
        guard let run = second.run else {
            Issue.record("no run for a file with the last one's names")
            return
        }
        #expect(run.standsForDocument && second.document.device.isEmpty && second.document.warnings.isEmpty)
        #expect(run.device.count == reference.device.count)
        for (name, entry) in reference.device {
            #expect(run.value(name) == entry.value, "\(name)")
            #expect(
                MergeInput(kind: .standard, document: second.document, fresh: true, run: run).value(name) == entry.value
            )
        }
        for absent in ["AAA", "NTP_ADDR", "ZZZ_LAST", "PHONEBOOK_NAME", ""] { #expect(run.value(absent) == nil) }
        // New names (phone 3), the same names in another order (phone 5): a document again, and the new order kept.
        let stands = try [3, 5, 5].map { try parsed(Self.standard($0)).run?.standsForDocument }
        #expect(stands == [false, false, true])
        // The last names in the last order, but the first one under <Initial>; a name set twice (the names are then
        // not the last file's): the document is made, as `parse` makes it.
        let template = Self.standard(5)
        #expect(template.hasPrefix("<PANASIPPhoneConfig>\n<Device>\n<CFG_FILE_KEY>"))
        let underInitial = template.replacingOccurrences(
            of: "<Device>\n<CFG_FILE_KEY>",
            with: "<Initial><CFG_FILE_KEY>"
        )
        .replacingOccurrences(of: "</CFG_FILE_KEY>\n", with: "</CFG_FILE_KEY></Initial><Device>\n")
        let twice = template.replacingOccurrences(of: "HTTP_AUTH_PASSWORD>", with: "CFG_FILE_KEY>")
        for text in [underInitial, twice] {
            let made = try parsed(text)
            #expect(made.run?.standsForDocument != true)
            #expect(made.document == (try ConfigParser.parse(Array(text.utf8), file: "standard")))
        }
        // Right after a file that stood: the same file made on Windows (CRLF) stands too, with the same values; one
        // the scanner leaves to libxml2 (a CR on its own) has its document and no run.
        #expect(try parsed(Self.standard(6)).run?.standsForDocument == false)
        #expect(try parsed(Self.standard(7)).run?.standsForDocument == true)
        let windows = try parsed(Self.standard(8).replacingOccurrences(of: "\n", with: "\r\n"))
        let unix = try ConfigParser.parse(Array(Self.standard(8).utf8), file: "standard")
        #expect(windows.run?.standsForDocument == true)
        for (name, entry) in unix.device { #expect(windows.run?.value(name) == entry.value, "\(name)") }
        let loneCR = Self.standard(9).replacingOccurrences(of: "</Device>", with: "\r</Device>")
        let libxml2 = try parsed(loneCR)
        let reference8 = try ConfigParser.parse(Array(loneCR.utf8), file: "std")
        #expect(libxml2.run == nil && libxml2.document == reference8)
        #expect(libxml2.document.device["SIP_AUTHID_1"]?.value == "1009")
    }

    @Test("a phone's own file from the last one's template is read by its texts: its run is the one its document makes")
    func ownFileFromTheLastTemplateIsReadByItsTexts() throws {
        let prepared = PreparedProfile(TestProfiles.utg300, sharing: true)
        func file(_ i: Int) -> String {
            var entries: [(String, String, String?)] = []
            for k in 1...30 {
                let value = k % 3 == 0 ? "value \(k) of phone \(i)" : "v\(k)"
                entries.append(("NAME_\(k)", value, k % 5 == 0 ? "!" : nil))
            }
            entries.append(("SIP_AUTHID_1", "100\(i)", "R"))
            entries.append(("CFG_FILE_KEY", "key-\(i)-0123456789abcdef", nil))
            return Fixture.device(entries)
        }
        func read(_ text: String) throws -> MergeRun? { try Self.readOwn(text, prepared).run }
        func template() -> [UInt8]? { prepared.merges.ownTemplate()?.xml.body }
        _ = try read(file(1))
        #expect(template() == Array(file(1).utf8))
        for i in 2...4 {
            // Read against phone 1's file: the template stays. The run is the one the document makes, perm included.
            let run = try #require(try read(file(i)))
            #expect(run.standsForDocument)
            #expect(run.device == (try Self.entriesOfItsDocument(file(i))))
            #expect(template() == Array(file(1).utf8))
        }
        // The same names laid out otherwise (a blank line more): read in full, it stands, and it is the next template.
        let spaced = file(5).replacingOccurrences(of: "<Device>\n", with: "<Device>\n\n")
        #expect(try read(spaced)?.standsForDocument == true)
        #expect(template() == Array(spaced.utf8))
        let next = file(6).replacingOccurrences(of: "<Device>\n", with: "<Device>\n\n")
        let run = try #require(try read(next))
        #expect(run.device == (try Self.entriesOfItsDocument(next)))
        // A file left to libxml2 (a lone CR in its layout) is not read against the template, nor does it replace it.
        #expect(try read(file(7).replacingOccurrences(of: "</Device>", with: "\r</Device>")) == nil)
        #expect(template() == Array(spaced.utf8))
    }

    @Test("files that differ in a one-line comment too (servers write one per phone) are still read by their texts")
    func perPhoneCommentKeepsTheTemplate() throws {
        let prepared = PreparedProfile(TestProfiles.utg300, sharing: true)
        func file(_ i: Int) -> String {
            Self.standard(i).replacingOccurrences(
                of: "<Device>\n",
                with: "<Device>\n<!-- for phone \(i), made 2026-11-27 08:00:0\(i) -->\n"
            )
        }
        // Whether phone 1's file is still the template (a file read in full with another layout would be the next one).
        func keptFirst() -> Bool { prepared.merges.ownTemplate()?.xml.body == Array(file(1).utf8) }
        _ = try Self.readOwn(file(1), prepared)
        #expect(keptFirst())
        for i in [2, 4] {  // phone 3's file has names of its own
            // Read against phone 1's file.
            let run = try #require(try Self.readOwn(file(i), prepared).run)
            #expect(run.standsForDocument)
            #expect(run.device == (try Self.entriesOfItsDocument(file(i))))
            #expect(keptFirst())
        }
    }

    @Test("the fleet's base is the second phone's configuration: the first one's shared files came before the memo")
    func baseFromTheFirstPhoneOfTheMemo() throws {
        let prepared = PreparedProfile(TestProfiles.utg300, sharing: true)
        var first = Self.phone(1, prepared: prepared)
        first.powerOn()
        // Its initial, product and master files were each parsed a first time: no run the next phones share.
        #expect(prepared.shared?.base == nil && first.flash.parameters.base == nil)
        var second = Self.phone(2, prepared: prepared)
        second.powerOn()
        let base = try #require(prepared.shared?.base)
        #expect(second.flash.parameters.base === base)
        // Its shared values are the memo's copies: the third phone's entries from those files compare by identity.
        // ("product value 12" is 16 bytes: a string with storage of its own, not one held inline.)
        let product = try #require(try prepared.parsed(Array(Self.product.utf8), file: "product", kind: .product).run)
        let value = try #require(product.device.first { $0.name == "PRODUCT_SETTING_NUMBER_12" }?.value)
        let inBase = try #require(base.entries.first { $0.name == "PRODUCT_SETTING_NUMBER_12" }?.value)
        #expect(value == inBase && value.utf8.count > 15)
        let address = try #require(value.utf8.withContiguousStorageIfAvailable { $0.baseAddress } ?? nil)
        #expect(address == inBase.utf8.withContiguousStorageIfAvailable { $0.baseAddress })
        var third = Self.phone(3, prepared: prepared)
        third.powerOn()
        #expect(third.flash.parameters.base === base)
    }

    @Test("a shared file's run answers the cycle's parameters as its document does: device, then <Initial>, or none")
    func sharedRunAnswersTheCycleParameters() throws {
        let prepared = PreparedProfile(TestProfiles.utg300, sharing: true)
        let text = """
            <PANASIPPhoneConfig>
            <Initial><HTTP_AUTH_ID>initial-id</HTTP_AUTH_ID><HTTP_USER_AGENT>initial-ua</HTTP_USER_AGENT></Initial>
            <Device><HTTP_USER_AGENT>Shared-{MAC}</HTTP_USER_AGENT><HTTP_PROXY_SVR_PORT>3128</HTTP_PROXY_SVR_PORT>
            <CFG_FILE_KEY_LENGTH>256</CFG_FILE_KEY_LENGTH></Device>
            </PANASIPPhoneConfig>
            """
        let body = Array(text.utf8)
        _ = try prepared.parsed(body, file: "master", kind: .master)
        let parsed = try prepared.parsed(body, file: "master", kind: .master)
        let run = try #require(parsed.run)
        #expect(run.common && run.cycleValues != nil)
        let shared = MergeInput(kind: .master, document: parsed.document, fresh: true, run: run)
        let alone = MergeInput(kind: .master, document: parsed.document, fresh: true)
        for parameter in CycleParameter.allCases {
            #expect(shared.value(parameter) == alone.value(parameter.name), "\(parameter.name)")
        }
        #expect(shared.value(.userAgent) == "Shared-{MAC}" && shared.value(.authID) == "initial-id")
        #expect(shared.value(.proxyPort) == "3128" && shared.value(.fileKeyLength) == "256")
        #expect(shared.value(.authPassword) == nil)
    }

    @Test("a standard file seen again (its phone resyncs) stays the phone's own: not memoised, not a shared run")
    func standardFileSeenAgainStaysOwn() throws {
        let prepared = PreparedProfile(TestProfiles.utg300, sharing: true)
        let standard = Array(Self.standard(1).utf8)
        let first = try prepared.parsed(standard, file: "standard", kind: .standard)
        let again = try prepared.parsed(standard, file: "standard", kind: .standard)
        #expect(!prepared.documents.holds(standard))
        #expect(first.run?.common == false && again.run?.common == false)
        #expect(again.run?.device == first.run?.device)
        // The second time its names are the last file's: its run stands for its document.
        #expect(first.run?.standsForDocument == false && again.run?.standsForDocument == true)
        // The same bytes as a master file are shared from the second sighting on.
        _ = try prepared.parsed(standard, file: "master", kind: .master)
        #expect(try prepared.parsed(standard, file: "master", kind: .master).run?.common == true)
    }
}
