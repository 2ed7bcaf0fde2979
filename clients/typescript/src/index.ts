/** A TypeScript client for encoder.v1: Float32Array vectors out, gRPC status errors unchanged. */

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

import type { ProtoGrpcType as EncoderProto } from "./gen/encoder.js";
import type { EncodeRequest } from "./gen/encoder/v1/EncodeRequest.js";
import type { EncodeResponse__Output } from "./gen/encoder/v1/EncodeResponse.js";
import type { EncoderClient as EncoderStub } from "./gen/encoder/v1/Encoder.js";
import type { ListModelsResponse__Output } from "./gen/encoder/v1/ListModelsResponse.js";
import type { ModelInfo__Output } from "./gen/encoder/v1/ModelInfo.js";
import type { Tensor__Output } from "./gen/encoder/v1/Tensor.js";
import type { TokenizeResponse__Output } from "./gen/encoder/v1/TokenizeResponse.js";
import type { HealthClient as HealthStub } from "./gen/grpc/health/v1/Health.js";
import type { HealthCheckResponse__Output } from "./gen/grpc/health/v1/HealthCheckResponse.js";
import type { ProtoGrpcType as HealthProto } from "./gen/health.js";

// The checkout's protos/: `npm run build` types this module from them; it loads them at run time.
const PROTOS = fileURLToPath(new URL("../../../protos/", import.meta.url));
// grpc.health.v1's Check (gRPC's standard service, not ours, so not in protos/).
const OWN_PROTOS = fileURLToPath(new URL("../proto/", import.meta.url));
// As the build's proto-loader-gen-types flags, so the decoded objects match their types.
const LOAD: protoLoader.Options = {
  keepCase: true,
  longs: Number, // ids, counts and sizes stay far below 2**53
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTOS, OWN_PROTOS],
};
// The Python client's retry and load-balancing policy (zh_rnn_encoder.client.SERVICE_CONFIG), kept
// beside the proto it configures; tests/integration/test_ts_client.py checks that the two are the
// same.
export const SERVICE_CONFIG = readFileSync(
  `${PROTOS}encoder/v1/encoder_grpc_service_config.json`,
  "utf8",
);

function load<T>(file: string): T {
  return grpc.loadPackageDefinition(protoLoader.loadSync(file, LOAD)) as unknown as T;
}
const encoderProto = load<EncoderProto>("encoder/v1/encoder.proto").encoder.v1;
const healthProto = load<HealthProto>("grpc/health/v1/health.proto").grpc.health.v1;

export type Pooling = "last" | "mean" | "max";
export type Truncation = "none" | "keep_first" | "keep_last";
export type HealthStatus = HealthCheckResponse__Output["status"];

export interface ClientOptions {
  /** Per-call deadline in milliseconds (default 30 s). */
  timeoutMs?: number;
  maxMessageBytes?: number;
  /** TLS or mutual TLS: grpc.credentials.createSsl(ca, key, cert); default plaintext. */
  credentials?: grpc.ChannelCredentials;
  /** Sent as a bearer token on every call but the health check. */
  token?: string;
  /** Apply SERVICE_CONFIG's retry policy (default true). */
  retry?: boolean;
}

/** Unset pooling and normalize: the model's defaults (info().default_pooling, default_normalize). */
export interface EncodeOptions {
  pooling?: Pooling;
  normalize?: boolean;
  truncation?: Truncation;
  maxTokens?: number;
  tokenVectors?: boolean;
  requestId?: string;
  /** A model the server serves (listModels()); unset: its default model. */
  model?: string;
}

export interface Encoded {
  tokens: string[];
  ids: number[];
  /** [output_dim] */
  vector: Float32Array;
  /** With tokenVectors: one [output_dim] row per token. */
  tokenVectors: Float32Array[] | null;
  truncated: boolean;
  /** The hex sha256 of the bundle.json of the model that made it: vectors of two versions are
   * not comparable. */
  modelVersion: string;
}

export interface Tokenized {
  tokens: string[];
  ids: number[];
  unknown: number;
  modelVersion: string;
}

/** One model of listModels(): the default first. */
export interface ServedModel {
  name: string;
  version: string;
  isDefault: boolean;
}

/** GetModelInfo with the proto's field names; default_pooling as an option value, as in Python. */
export type ModelInfo = Omit<ModelInfo__Output, "default_pooling"> & {
  default_pooling: Pooling | null;
};

/** A Tensor's little-endian float32 values, row-major, checked against its shape. */
export function toFloat32(t: Tensor__Output): Float32Array {
  const n = t.shape.reduce((a, b) => a * b, 1);
  if (t.data.byteLength !== 4 * n) {
    throw new Error(`a tensor of shape [${t.shape}] has ${t.data.byteLength} bytes`);
  }
  const view = new DataView(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  return Float32Array.from({ length: n }, (_, i) => view.getFloat32(4 * i, true));
}

function rows(t: Tensor__Output): Float32Array[] {
  const [n = 0, width = 0] = t.shape;
  const flat = toFloat32(t);
  return Array.from({ length: n }, (_, i) => flat.subarray(i * width, (i + 1) * width));
}

export function encodeRequest(texts: string[], o: EncodeOptions = {}): EncodeRequest {
  return {
    texts,
    pooling: o.pooling ? (`POOLING_${o.pooling.toUpperCase()}` as EncodeRequest["pooling"]) : 0,
    ...(o.normalize === undefined ? {} : { normalize: o.normalize }), // absent: unset
    truncation: `TRUNCATION_${(o.truncation ?? "none").toUpperCase()}` as EncodeRequest["truncation"],
    max_tokens: o.maxTokens ?? 0,
    return_token_vectors: o.tokenVectors ?? false,
    request_id: o.requestId ?? "",
    model: o.model ?? "",
  };
}

type Start<Res> = (md: grpc.Metadata, opts: grpc.CallOptions, cb: grpc.requestCallback<Res>) => void;

/** `const c = new EncoderClient("127.0.0.1:50051"); (await c.encode(["北京冬奥"]))[0].vector`. */
export class EncoderClient {
  readonly stub: EncoderStub;
  private readonly healthStub: HealthStub;
  private readonly timeoutMs: number;
  private readonly metadata = new grpc.Metadata();

  constructor(target = "127.0.0.1:50051", o: ClientOptions = {}) {
    const retry = o.retry ?? true;
    const options: grpc.ChannelOptions = {
      "grpc.max_receive_message_length": o.maxMessageBytes ?? 64 << 20,
      "grpc.max_send_message_length": o.maxMessageBytes ?? 64 << 20,
      "grpc.enable_retries": retry ? 1 : 0,
      ...(retry ? { "grpc.service_config": SERVICE_CONFIG } : {}),
    };
    const creds = o.credentials ?? grpc.credentials.createInsecure();
    this.stub = new encoderProto.Encoder(target, creds, options);
    const channelOverride = this.stub.getChannel(); // one connection for both services
    this.healthStub = new healthProto.Health(target, creds, { channelOverride });
    this.timeoutMs = o.timeoutMs ?? 30_000;
    if (o.token) this.metadata.set("authorization", `Bearer ${o.token}`);
  }

  close(): void {
    this.stub.close();
  }

  /** A unary call as a promise that rejects with the call's grpc.ServiceError. */
  private call<Res>(start: Start<Res>, md = this.metadata): Promise<Res> {
    const deadline = Date.now() + this.timeoutMs;
    return new Promise((resolve, reject) =>
      start(md, { deadline }, (err, res) => (err ? reject(err) : resolve(res!))),
    );
  }

  async encode(texts: string[], o: EncodeOptions = {}): Promise<Encoded[]> {
    const req = encodeRequest(texts, o);
    const r = await this.call<EncodeResponse__Output>((md, opts, cb) =>
      this.stub.Encode(req, md, opts, cb),
    );
    return r.encodings.map((e) => ({
      tokens: e.tokens,
      ids: e.ids,
      vector: toFloat32(e.sentence_vector!),
      tokenVectors: e.token_vectors ? rows(e.token_vectors) : null,
      truncated: e.truncated,
      modelVersion: r.model_version,
    }));
  }

  async tokenize(texts: string[], model = ""): Promise<Tokenized[]> {
    const r = await this.call<TokenizeResponse__Output>((md, opts, cb) =>
      this.stub.Tokenize({ texts, model }, md, opts, cb),
    );
    return r.texts.map((t) => ({
      tokens: t.tokens,
      ids: t.ids,
      unknown: t.unknown_count,
      modelVersion: r.model_version,
    }));
  }

  /** Every model the server serves, the default first. */
  async listModels(): Promise<ServedModel[]> {
    const r = await this.call<ListModelsResponse__Output>((md, opts, cb) =>
      this.stub.ListModels({}, md, opts, cb),
    );
    return r.models.map((m) => ({ name: m.name, version: m.version, isDefault: m.is_default }));
  }

  async info(model = ""): Promise<ModelInfo> {
    const r = await this.call<ModelInfo__Output>((md, opts, cb) =>
      this.stub.GetModelInfo({ model }, md, opts, cb),
    );
    const pooling = r.default_pooling.replace("POOLING_", "").toLowerCase();
    return { ...r, default_pooling: pooling === "unspecified" ? null : (pooling as Pooling) };
  }

  /** SERVING, NOT_SERVING or SERVICE_UNKNOWN; rejects with the gRPC error if unreachable. */
  async health(service = ""): Promise<HealthStatus> {
    const r = await this.call<HealthCheckResponse__Output>(
      (md, opts, cb) => this.healthStub.Check({ service }, md, opts, cb),
      new grpc.Metadata(), // open, as the server's health service is
    );
    return r.status;
  }
}

export { grpc };
