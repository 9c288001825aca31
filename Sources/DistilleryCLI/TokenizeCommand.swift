import ArgumentParser
import Foundation
import DistilleryModels
import DistilleryTensor
import DistilleryText

struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Tokenize text the way the Hugging Face BERT tokenizer does; one JSON line per input.",
        discussion: """
        Each output line holds input_ids, token_type_ids and tokens. JSONL input lines carry \
        "text", and optionally "text_pair" and "max_length" (truncation, longest first).
        """)

    @Option(name: .long, help: "A vocab.txt or a tokenizer folder (vocab.txt + tokenizer_config.json), e.g. a model folder.")
    var tokenizer: String
    @Option(name: .long, parsing: .singleValue, help: "Text to tokenize (repeatable).")
    var text: [String] = []
    @Option(name: .long, help: "A JSONL file of {\"text\", \"text_pair\"?, \"max_length\"?} lines.")
    var input: String?
    @Option(name: .long, help: "Truncate every --text input to this many tokens.")
    var maxLength: Int?

    func validate() throws {
        if text.isEmpty == (input == nil) { throw ValidationError("give --text … or --input FILE.jsonl (one of them)") }
        if let maxLength, !(2...65536).contains(maxLength) { throw ValidationError("--max-length must be 2…65536, got \(maxLength)") }
    }

    func run() throws {
        let t = try BertTokenizer.load(path: tokenizer)
        for line in try TokenizeRequest.read(texts: text, maxLength: maxLength, input: input) {
            let e = t.encode(line.text, pair: line.textPair, maxLength: line.maxLength)
            print(try TokenizeOutput(e, tokens: t.tokens(e.inputIds)).jsonLine())
        }
    }
}

struct TokenizeRequest: Decodable {
    let text: String
    let textPair: String?
    let maxLength: Int?
    enum CodingKeys: String, CodingKey { case text, textPair = "text_pair", maxLength = "max_length" }

    init(text: String, textPair: String?, maxLength: Int?) { self.text = text; self.textPair = textPair; self.maxLength = maxLength }

    static func read(texts: [String], maxLength: Int?, input: String?) throws -> [TokenizeRequest] {
        guard let input else { return texts.map { TokenizeRequest(text: $0, textPair: nil, maxLength: maxLength) } }
        let data = try readFile(input)
        var out: [TokenizeRequest] = []
        for (n, bytes) in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            guard let line = String(validating: bytes, as: UTF8.self) else {
                throw ValidationError("\(input):\(n + 1): not valid UTF-8")
            }
            if line.trimmingCharacters(in: .whitespaces).isEmpty { continue }
            let request: TokenizeRequest
            do { request = try JSONDecoder().decode(TokenizeRequest.self, from: Data(line.utf8)) } catch {
                throw ValidationError("\(input):\(n + 1): expected {\"text\": …, \"text_pair\"?: …, \"max_length\"?: …}: \(describe(error))")
            }
            if let m = request.maxLength, !(2...65536).contains(m) {
                throw ValidationError("\(input):\(n + 1): max_length must be 2…65536, got \(m)")
            }
            out.append(request)
        }
        return out
    }
}

struct TokenizeOutput: Encodable {
    let input_ids: [Int32]
    let token_type_ids: [Int32]
    let tokens: [String]
    init(_ e: Encoding, tokens: [String]) { input_ids = e.inputIds; token_type_ids = e.tokenTypeIds; self.tokens = tokens }

    func jsonLine() throws -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try enc.encode(self), as: UTF8.self)
    }
}
