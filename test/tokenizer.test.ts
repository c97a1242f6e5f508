import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtemp, rm, writeFile, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fitTokenizer, saveTokenizerFiles, SPECIAL_TOKENS, Tokenizer, bytesToUnicode } from "../src/model/tokenizer.js";
import { Rng } from "../src/util/rng.js";
import { syntheticCorpus } from "./helpers/corpus.js";

let dir: string;
let tok: Tokenizer;
const corpus = syntheticCorpus(400, 7);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "anvil-tok-"));
  await saveTokenizerFiles(dir, fitTokenizer(corpus, { vocabSize: 1024 }));
  tok = await Tokenizer.load(dir);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Random valid unicode text: ASCII, Latin-1, CJK, emoji, combining marks, controls. */
function randomUnicode(rng: Rng, length: number): string {
  const ranges: Array<[number, number]> = [
    [0x00, 0x7f], [0x80, 0x2ff], [0x300, 0x36f], [0x400, 0x4ff], [0x4e00, 0x9fff],
    [0xac00, 0xd7a3], [0xe000, 0xf8ff], [0xfff0, 0xfffd], [0x1f300, 0x1faff], [0x10000, 0x10ffff],
  ];
  let s = "";
  for (let i = 0; i < length; i++) {
    const [lo, hi] = ranges[rng.below(ranges.length)]!;
    s += String.fromCodePoint(lo + rng.below(hi - lo + 1));
  }
  return s;
}

describe("fitTokenizer", () => {
  it("learns frequent words as single tokens and keeps digits separate", () => {
    expect(tok.tokenToId("Ġcosts")).toBeDefined();
    expect(tok.tokenToId("Ġdollars")).toBeDefined();
    const ids = tok.encode(" costs 1234");
    expect(ids.map((i) => tok.idToToken(i))).toEqual(["Ġcosts", "Ġ", "1", "2", "3", "4"]);
  });

  it("has the 256-byte alphabet, then merges, then the special tokens", () => {
    const alphabet = bytesToUnicode();
    expect(new Set(alphabet).size).toBe(256);
    alphabet.forEach((ch, b) => expect(tok.tokenToId(ch)).toBe(b));
    const first = tok.vocabSize - SPECIAL_TOKENS.length;
    SPECIAL_TOKENS.forEach((t, i) => expect(tok.tokenToId(t.content)).toBe(first + i));
    expect(tok.padTokenId).toBe(tok.tokenToId("<|endoftext|>"));
    expect(tok.eosTokenId).toBe(tok.tokenToId("<|im_end|>"));
    expect(tok.imStartId).toBe(tok.tokenToId("<|im_start|>"));
    expect(tok.imEndId).toBe(tok.eosTokenId);
    expect([...tok.specialTokenIds].sort()).toEqual([first, first + 1, first + 2]);
  });

  it("hits the requested vocabulary size when the corpus has enough pairs", async () => {
    const rng = new Rng(3);
    const words = Array.from({ length: 400 }, () => randomUnicode(rng, 3 + rng.below(6)).replace(/\s/g, "x"));
    const rich = Array.from({ length: 200 }, () => Array.from({ length: 30 }, () => words[rng.below(words.length)]).join(" "));
    const files = fitTokenizer(rich, { vocabSize: 600 });
    const t = new Tokenizer(files.tokenizer, files.config);
    expect(t.vocabSize).toBe(600);
    for (const s of rich.slice(0, 50)) expect(t.decode(t.encode(s))).toBe(s);
  });

  it("is deterministic", () => {
    const a = JSON.stringify(fitTokenizer(corpus, { vocabSize: 1024 }));
    const b = JSON.stringify(fitTokenizer([...corpus], { vocabSize: 1024 }));
    expect(a).toBe(b);
  });

  it("special tokens in the corpus are atomic and never merged", () => {
    const ids = tok.encode("<think>a</think><answer>3</answer>");
    expect(ids[0]).toBe(tok.tokenToId("<think>"));
    expect(ids.at(-1)).toBe(tok.tokenToId("</answer>"));
    const files = fitTokenizer(corpus, { vocabSize: 1024 });
    const merges = (files.tokenizer["model"] as { merges: string[] }).merges;
    expect(merges.some((m) => m.includes("think") && m.includes("<"))).toBe(false);
  });

  it("keeps phrases whole as added tokens, after the special ones, and round-trips them", async () => {
    const phrases = [" is true", " is false"];
    const text = "- foam is true.\n- If foam then not reef: foam true, so reef is false.\nIs reef true or false?";
    const files = fitTokenizer([...corpus, text], { vocabSize: 1024, phrases });
    const t = new Tokenizer(files.tokenizer, files.config);
    const ids = t.encode(text);
    const pieces = ids.map((i) => t.decode([i]));
    expect(pieces.filter((p) => phrases.includes(p))).toEqual([" is true", " is false"]);
    expect(pieces).toContain(" true"); // "true" elsewhere stays an ordinary token
    expect(t.decode(ids)).toBe(text);
    const added = files.tokenizer["added_tokens"] as { id: number; content: string; special: boolean }[];
    expect(added.map((a) => a.content)).toEqual([...SPECIAL_TOKENS.map((s) => s.content), ...phrases]);
    expect(added.slice(-2).every((a) => !a.special && a.id === t.tokenToId(a.content))).toBe(true);
    // saved and loaded back as HF files, they still split the same way
    const d = await mkdtemp(join(tmpdir(), "anvil-tok-phr-"));
    await saveTokenizerFiles(d, files);
    expect((await Tokenizer.load(d)).encode(text)).toEqual(ids);
    await rm(d, { recursive: true, force: true });
    expect(() => fitTokenizer(corpus, { vocabSize: 1024, phrases: [""] })).toThrow(/bad phrase ""/);
    expect(() => fitTokenizer(corpus, { vocabSize: 1024, phrases: ["<think>"] })).toThrow(/bad phrase/);
    expect(() => fitTokenizer(corpus, { vocabSize: 1024, phrases: [" is true", " is true"] })).toThrow(/bad phrase " is true" \(empty, special or repeated\)/);
  });

  it("rejects bad options", () => {
    expect(() => fitTokenizer(corpus, { vocabSize: 100 })).toThrow(/vocabSize must be an integer in \[263/);
    expect(() => fitTokenizer(corpus, { vocabSize: 1024.5 })).toThrow(/vocabSize/);
  });
});

describe("Tokenizer", () => {
  it("round-trips the corpus", () => {
    for (const s of corpus) expect(tok.decode(tok.encode(s))).toBe(s);
  });

  it("round-trips arbitrary unicode through the byte alphabet", () => {
    const rng = new Rng(11);
    const fixed = [
      "", " ", "  leading and trailing  ", "tabs\tand\r\nCRLF\n\n\nnewlines", "\u0000\u0001\u007f\u0085",
      "e\u0301 (decomposed) vs \u00e9", "你好，世界", "emoji 🎉🙂👩‍👩‍👧 flags 🇳🇴", "isn't it'S 'LL 's ' '",
      " . , ! ? ;  -- ...", "<|im_start|>user\nhi<|im_end|>", "<think> </think>", "\u{10ffff}\u{fffd}",
    ];
    for (const s of fixed) expect(tok.decode(tok.encode(s))).toBe(s);
    for (let i = 0; i < 200; i++) {
      const s = randomUnicode(rng, 1 + rng.below(40));
      expect(tok.decode(tok.encode(s))).toBe(s);
    }
  });

  it("decodes edge cases: empty, out of range, skipped specials", () => {
    expect(tok.decode([])).toBe("");
    expect(() => tok.decode([tok.vocabSize])).toThrow(RangeError);
    expect(() => tok.decode([-1])).toThrow(/id -1 is not in the vocabulary/);
    expect(() => tok.decode([1.5])).toThrow(RangeError);
    const ids = tok.encode("<|im_start|>assistant\n<think>x</think><|im_end|>");
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe("assistant\n<think>x</think>");
  });

  it("renders the ChatML chat template", () => {
    const text = tok.applyChatTemplate(
      [
        { role: "system", content: "Answer honestly." },
        { role: "user", content: "What does the tea cost?" },
      ],
      { addGenerationPrompt: true },
    );
    expect(text).toBe(
      "<|im_start|>system\nAnswer honestly.<|im_end|>\n<|im_start|>user\nWhat does the tea cost?<|im_end|>\n<|im_start|>assistant\n",
    );
    const noPrompt = tok.applyChatTemplate([{ role: "user", content: "x" }]);
    expect(noPrompt).toBe("<|im_start|>user\nx<|im_end|>\n");
    const ids = tok.encode(text);
    expect(ids[0]).toBe(tok.imStartId);
    expect(ids.filter((i) => i === tok.imEndId).length).toBe(2);
    expect(tok.decode(ids)).toBe(text);
  });

  it("prefers chat_template.jinja and supports named template lists", async () => {
    const d = await mkdtemp(join(tmpdir(), "anvil-tok2-"));
    try {
      const files = fitTokenizer(corpus, { vocabSize: 400 });
      await saveTokenizerFiles(d, files);
      await writeFile(join(d, "chat_template.jinja"), "{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}{{ eos_token }}");
      const t = await Tokenizer.load(d);
      expect(t.applyChatTemplate([{ role: "user", content: "hi" }])).toBe("[user]hi<|im_end|>");
      const listed = new Tokenizer(files.tokenizer, { ...files.config, chat_template: [{ name: "default", template: "D{{ messages|length }}" }, { name: "tool_use", template: "T" }] });
      expect(listed.applyChatTemplate([{ role: "user", content: "a" }])).toBe("D1");
      const none = new Tokenizer(files.tokenizer, { ...files.config, chat_template: undefined });
      expect(none.hasChatTemplate).toBe(false);
      expect(() => none.applyChatTemplate([])).toThrow(/no chat_template/);
    } finally {
      await rm(d, { recursive: true, force: true });
    }
  });

  it("reports bad files by name", async () => {
    const d = await mkdtemp(join(tmpdir(), "anvil-tok3-"));
    try {
      await writeFile(join(d, "tokenizer.json"), "{oops");
      await expect(Tokenizer.load(d)).rejects.toThrow(/tokenizer\.json: malformed JSON/);
      await rm(join(d, "tokenizer.json"));
      await expect(Tokenizer.load(d)).rejects.toThrow(/cannot read .*tokenizer\.json/);
      const files = fitTokenizer(corpus, { vocabSize: 400 });
      expect(() => new Tokenizer(files.tokenizer, { ...files.config, eos_token: "<nope>" })).toThrow(/eos_token "<nope>" is not in the vocabulary/);
    } finally {
      await rm(d, { recursive: true, force: true });
    }
  });

  it("writes HF-format files", async () => {
    const json = JSON.parse(await readFile(join(dir, "tokenizer.json"), "utf8"));
    expect(json.model.type).toBe("BPE");
    expect(json.pre_tokenizer.pretokenizers[1].type).toBe("ByteLevel");
    expect(json.decoder.type).toBe("ByteLevel");
    expect(json.added_tokens.map((t: { content: string }) => t.content)).toEqual(SPECIAL_TOKENS.map((t) => t.content));
    expect(typeof json.model.merges[0]).toBe("string");
    const config = JSON.parse(await readFile(join(dir, "tokenizer_config.json"), "utf8"));
    expect(config).toMatchObject({ eos_token: "<|im_end|>", pad_token: "<|endoftext|>", clean_up_tokenization_spaces: false });
  });
});
