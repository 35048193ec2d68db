import Testing
import VPhoneTesting

@testable import PhoneCore

@Suite("Identity, macros and URLs (spec §1, §3)")
struct IdentityAndURLTests {
    @Test(arguments: ["0080F0C571EB", "0080f0c571eb", "00:80:F0:C5:71:EB", "00-80-f0-c5-71-eb"])
    func macForms(_ text: String) throws {
        let mac = try #require(MAC(text))
        #expect(mac.upper == "0080F0C571EB")
        #expect(mac.lower == "0080f0c571eb")
    }

    @Test(arguments: ["", "0080F0C571E", "0080F0C571EBA", "0080F0C571EG", "00:80:F0-C5:71:EB", "00 80 F0 C5 71 EB"])
    func macRefused(_ text: String) {
        #expect(MAC(text) == nil)
    }

    @Test func macArithmetic() throws {
        let mac = try #require(MAC("0080F0FFFFFF"))
        #expect(mac.advanced(by: 1).upper == "0080F1000000")
    }

    /// A phone's MAC is unicast and not all zeros; MAC itself parses any 12 hex digits (a flash may hold such a one).
    @Test func phoneMACs() throws {
        for unicast in ["0080F0C571EB", "000000000001", "020000000000", "FEFFFFFFFFFF"] {
            #expect(try #require(MAC(unicast)).notAPhoneMAC == nil, "\(unicast)")
        }
        #expect(MAC("000000000000")?.notAPhoneMAC == "is all zeros, which no device has")
        #expect(MAC("FFFFFFFFFFFF")?.notAPhoneMAC == "is the broadcast address")
        for multicast in ["010000000000", "0180C2000000", "333300000001", "FF0000000000"] {
            #expect(MAC(multicast)?.notAPhoneMAC == "is a multicast address (the first octet is odd)", "\(multicast)")
        }
    }

    let macros = MacroContext(mac: MAC("0080F0C571EB")!, model: "KX-UTG300", firmware: "03.210")

    @Test func macrosExpandCaseSensitively() {
        #expect(macros.expand("http://p/Config{MAC}.cfg") == "http://p/Config0080F0C571EB.cfg")
        #expect(macros.expand("{mac}-{MODEL}-{fwver}") == "0080f0c571eb-KX-UTG300-03.210")
        // spec §1: macros are case-sensitive and an unknown one stays literally
        #expect(macros.expand("{Mac}{XYZ}{model}") == "{Mac}{XYZ}{model}")
        #expect(macros.expand("open { brace") == "open { brace")
        #expect(macros.expand("Panasonic_{MODEL}/{fwver} ({mac})") == "Panasonic_KX-UTG300/03.210 (0080f0c571eb)")
        // Braces around braces, an unclosed one, an empty one, text that is not ASCII around them.
        #expect(macros.expand("{{MAC}}{MAC") == "{{MAC}}{MAC")
        #expect(macros.expand("{}{MAC}}") == "{}0080F0C571EB}")
        #expect(macros.expand("é{MAC}☎{mac}") == "é0080F0C571EB☎0080f0c571eb")
        #expect(MAC("0A1B2C3D4E5F")?.upper == "0A1B2C3D4E5F" && MAC("0A1B2C3D4E5F")?.lower == "0a1b2c3d4e5f")
        // An unclosed `{` ends the search (the rest is text): only the output is seen here, not that the rest is not
        // searched again from each later `{`.
        #expect(macros.expand("a{{{b") == "a{{{b" && macros.expand("{MAC}{") == "0080F0C571EB{")
        // A yes too many only costs the URL memo its use (`{{mac}` expands to itself); a no too many would be wrong.
        #expect(MacroContext.namesTheMAC("x{MAC}") && MacroContext.namesTheMAC("{{mac}"))
        #expect(!MacroContext.namesTheMAC("{Mac}{MODEL}{fwver}{MAC") && !MacroContext.namesTheMAC("no macro"))
    }

    @Test func urlWithoutFileNameGetsModelCfg() throws {
        #expect(
            try ProvisioningURL.candidates("http://prov.example.com", macros: macros)
                == ["http://prov.example.com/KX-UTG300.cfg"]
        )
        #expect(
            try ProvisioningURL.candidates("http://prov.example.com/dir/", macros: macros)
                == ["http://prov.example.com/dir/KX-UTG300.cfg"]
        )
        #expect(
            try ProvisioningURL.candidates("http://p/dir/?x=1", macros: macros) == ["http://p/dir/KX-UTG300.cfg?x=1"]
        )
        #expect(
            try ProvisioningURL.candidates("https://p/c/{MAC}.xml", macros: macros) == ["https://p/c/0080F0C571EB.xml"]
        )
    }

    @Test func schemelessUrlTriesTftpHttpHttpsFtp() throws {
        #expect(
            try ProvisioningURL.candidates("192.0.2.10/cfg/", macros: macros) == [
                "tftp://192.0.2.10/cfg/KX-UTG300.cfg", "http://192.0.2.10/cfg/KX-UTG300.cfg",
                "https://192.0.2.10/cfg/KX-UTG300.cfg", "ftp://192.0.2.10/cfg/KX-UTG300.cfg",
            ]
        )
    }

    @Test(arguments: ["file:///etc/passwd", "gopher://x/", "scp://h/f", "ldap://h/"])
    func refusedSchemes(_ url: String) {
        #expect(throws: URLProblem.self) { try ProvisioningURL.candidates(url, macros: macros) }
    }

    /// What libcurl would refuse at fetch time as "bad/illegal format", refused where the URL is read, saying why.
    @Test(arguments: [
        ("http://127.0.0.1:65536/", "the port \"65536\" is not a port number (1-65535)"),
        ("http://127.0.0.1:0/", "the port \"0\" is not a port number"),
        ("http://h:-1/", "the port \"-1\""), ("tftp://h:http/", "the port \"http\""),
        ("http://u:p@h:99999/x", "the port \"99999\""), ("prov.test:70000", "the port \"70000\""),
        ("http://h/my file.cfg", "holds a space: write it as %20"), ("http://h/x\u{7}.cfg", "control character 0x7"),
    ])
    func malformedURLsAreRefusedSayingWhy(_ url: String, _ reason: String) throws {
        let problem = #expect(throws: URLProblem.self) { try ProvisioningURL.candidates(url, macros: macros) }
        #expect(problem?.reason.contains(reason) == true, "\(String(describing: problem))")
    }

    @Test func portsAndIPv6LiteralsThatAreFine() throws {
        for url in [
            "http://h:1/x", "http://h:65535/x", "http://h:/x", "http://[::1]/x", "http://[::1]:8080/x",
            "http://u:p@h/x", "http://u:p@[fe80::1]:80/x", "h:8080/x",
        ] {
            #expect(throws: Never.self) { try ProvisioningURL.candidates(url, macros: macros) }
        }
    }

    @Test func tooLongAndEmptyUrls() {
        let long = "http://p/" + String(repeating: "a", count: 380)
        #expect(throws: URLProblem.self) { try ProvisioningURL.candidates(long, macros: macros) }
        #expect(throws: URLProblem.self) { try ProvisioningURL.candidates("  ", macros: macros) }
    }

    @Test("the profile's kept URLs are the ones made afresh, for every phone, model and URL; refusals are not kept")
    func keptCandidatesAreTheMadeOnes() throws {
        let prepared = PreparedProfile(TestProfiles.utg300)
        let urls = [
            "http://prov.example.com", "http://prov.example.com/dir/", "http://p/dir/?x=1", "https://p/c/{MAC}.xml",
            "192.0.2.10/cfg/", "  http://p/ConfigCom.cfg  ", "http://p/{MODEL}/{mac}.cfg",
            "http://p/Config{MODEL}.cfg", "http://p/{fwver}/", "http://p/{Mac}/x.cfg",
        ]
        let contexts = [
            macros, MacroContext(mac: MAC("0080F0000009")!, model: macros.model, firmware: macros.firmware),
            MacroContext(mac: MAC("0080F0000002")!, model: "KX-UTG300", firmware: "1"),
            MacroContext(mac: MAC("0080F0000003")!, model: "KX-UTG200", firmware: "1"),
            MacroContext(mac: MAC("0080F0000004")!, model: "KX-UTG200", firmware: "2"),
        ]
        for _ in 0..<2 {  // the second time from what was kept
            for context in contexts {
                for url in urls {
                    let kept = try prepared.candidates(url, macros: context)
                    #expect(kept == (try ProvisioningURL.candidates(url, macros: context)), "\(url)")
                }
            }
        }
        #expect(try prepared.candidates("http://p/", macros: contexts[3]) == ["http://p/KX-UTG200.cfg"])
        // The same text in another Unicode form is other bytes: its own candidates, not the kept ones.
        let composed = "http://p/caf\u{E9}/"
        let decomposed = "http://p/cafe\u{301}/"
        // Compared as bytes: `String ==` would call the two forms equal.
        let kept = try prepared.candidates(composed, macros: macros)
        #expect(kept.map { Array($0.utf8) } == [Array("http://p/caf\u{E9}/KX-UTG300.cfg".utf8)])
        let other = try prepared.candidates(decomposed, macros: macros)
        #expect(other.map { Array($0.utf8) } == [Array("http://p/cafe\u{301}/KX-UTG300.cfg".utf8)])
        for _ in 0..<2 {
            #expect(throws: URLProblem.self) { try prepared.candidates("gopher://x/", macros: macros) }
        }
    }

    @Test func credentialsAreRedacted() {
        #expect(redactURL("http://id:secret@h:8080/x@y") == "http://***@h:8080/x@y")
        #expect(redactURL("http://h/x") == "http://h/x")
        #expect(redactURL("http://h?u=a@b") == "http://h?u=a@b")
        #expect(redactURL("ftp://a@b:c@h#f") == "ftp://***@h#f")
        #expect(redactURL("no scheme@h/x") == "no scheme@h/x")
    }

    @Test func encryptedByPath() {
        for url in ["http://h/Config.enc", "http://h/c.ENC", "http://h/c.EnC?x=1", "tftp://h/a.b.enc#f", "x.enc"] {
            #expect(PhoneMachine.pathEndsInEnc(url), "\(url)")
        }
        for url in ["http://h/c.cfg", "http://h/c.cfg?f=.enc", "http://h/enc", "http://h/c\u{0E}enc", "nc", ""] {
            #expect(!PhoneMachine.pathEndsInEnc(url), "\(url)")
        }
    }

    /// The byte-wise URL handling (a fleet's hot path) against the cases a character-wise reading settles.
    @Test func urlEdgeCases() throws {
        #expect(try ProvisioningURL.candidates("http://h?x", macros: macros) == ["http://h/KX-UTG300.cfg?x"])
        #expect(try ProvisioningURL.candidates("http://h#f", macros: macros) == ["http://h/KX-UTG300.cfg#f"])
        #expect(
            try ProvisioningURL.candidates("http://h/dir/?a=/b", macros: macros) == ["http://h/dir/KX-UTG300.cfg?a=/b"]
        )
        #expect(try ProvisioningURL.candidates("http://h/f.cfg#x/", macros: macros) == ["http://h/f.cfg#x/"])
        #expect(try ProvisioningURL.candidates(" \thttp://h/x\n", macros: macros) == ["http://h/x"])
        #expect(try ProvisioningURL.candidates("\u{3000}http://h/x\u{3000}", macros: macros) == ["http://h/x"])
        #expect(try ProvisioningURL.candidates("HTTP://h/x", macros: macros) == ["HTTP://h/x"])
        #expect(try ProvisioningURL.candidates("http://h/é/", macros: macros) == ["http://h/é/KX-UTG300.cfg"])
        #expect(try ProvisioningURL.candidates("http://h/{MAC", macros: macros) == ["http://h/{MAC"])
        #expect(ProvisioningURL.scheme(of: "1http://h") == nil)
        #expect(ProvisioningURL.scheme(of: "svn+ssh://h") == "svn+ssh")
        #expect(ProvisioningURL.scheme(of: "héttp://h") == "héttp")
        #expect(ProvisioningURL.scheme(of: "h:/x") == nil)
        #expect(throws: URLProblem.self) { try ProvisioningURL.candidates("héttp://h/x", macros: macros) }
        #expect(macros.expand("{MAC}{MAC}") == "0080F0C571EB0080F0C571EB")
        #expect(macros.expand("{}{{MAC}}") == "{}{{MAC}}")  // the first "}" closes "{{MAC": not a macro
        #expect(macros.expand("é{mac}é") == "é0080f0c571ebé")
    }

    @Test func civilTime() {
        #expect(PhoneTime(millisecondsSinceEpoch: 0).description == "1970-01-01T00:00:00.000Z")
        #expect(PhoneTime(millisecondsSinceEpoch: 1_795_000_000_123).description == "2026-11-18T11:06:40.123Z")
    }
}
