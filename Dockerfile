# One image for every component: `shop run --components=…` picks the role.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/shop ./cmd/shop

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/shop /usr/local/bin/shop
ENTRYPOINT ["/usr/local/bin/shop"]
CMD ["run", "--components=all"]
