/*
 * Durable publish throughput of Paho C (MQTTClient) with its file persistence
 * (MQTTCLIENT_PERSISTENCE_DEFAULT), the peer of sansmqtt's FileStore in
 * bench/paho_store.sh. Built by that script with gcc, not by cargo.
 *
 *   paho_store_pub URI QOS MESSAGES WINDOW DIR
 *
 * Publishes MESSAGES messages of 64 bytes at QOS on topics bench/store/0..15, with at most
 * WINDOW unacknowledged at once (MQTTClient's maxInflightMessages is set to the same), and
 * prints "rate <messages per second>" counted from the first publish to the last
 * completion (PUBACK / PUBCOMP, the deliveryComplete callback).
 */
#include <MQTTClient.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static int outstanding;

static void delivered(void *context, MQTTClient_deliveryToken token)
{
    (void)context;
    (void)token;
    pthread_mutex_lock(&lock);
    outstanding--;
    pthread_cond_signal(&changed);
    pthread_mutex_unlock(&lock);
}

static int arrived(void *context, char *topic, int topic_len, MQTTClient_message *message)
{
    (void)context;
    (void)topic_len;
    MQTTClient_freeMessage(&message);
    MQTTClient_free(topic);
    return 1;
}

static void lost(void *context, char *cause)
{
    (void)context;
    fprintf(stderr, "connection lost: %s\n", cause ? cause : "?");
    exit(1);
}

static double seconds(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: %s URI QOS MESSAGES WINDOW DIR\n", argv[0]);
        return 2;
    }
    const char *uri = argv[1];
    int qos = atoi(argv[2]);
    long messages = atol(argv[3]);
    int window = atoi(argv[4]);
    const char *dir = argv[5];

    MQTTClient client;
    int rc = MQTTClient_create(&client, uri, "paho-store-bench", MQTTCLIENT_PERSISTENCE_DEFAULT,
                               (void *)dir);
    if (rc != MQTTCLIENT_SUCCESS) {
        fprintf(stderr, "create failed: %d\n", rc);
        return 1;
    }
    MQTTClient_setCallbacks(client, NULL, lost, arrived, delivered);
    MQTTClient_connectOptions options = MQTTClient_connectOptions_initializer;
    options.keepAliveInterval = 60;
    options.cleansession = 1;
    options.maxInflightMessages = window;
    rc = MQTTClient_connect(client, &options);
    if (rc != MQTTCLIENT_SUCCESS) {
        fprintf(stderr, "connect failed: %d\n", rc);
        return 1;
    }

    char payload[64];
    for (int i = 0; i < 64; i++)
        payload[i] = (char)('a' + i % 26);
    char topic[32];
    double started = seconds();
    for (long i = 0; i < messages; i++) {
        pthread_mutex_lock(&lock);
        while (outstanding >= window)
            pthread_cond_wait(&changed, &lock);
        outstanding++;
        pthread_mutex_unlock(&lock);
        snprintf(topic, sizeof topic, "bench/store/%ld", i % 16);
        MQTTClient_deliveryToken token;
        rc = MQTTClient_publish(client, topic, sizeof payload, payload, qos, 0, &token);
        if (rc != MQTTCLIENT_SUCCESS) {
            fprintf(stderr, "publish %ld failed: %d\n", i, rc);
            return 1;
        }
    }
    pthread_mutex_lock(&lock);
    while (outstanding > 0)
        pthread_cond_wait(&changed, &lock);
    pthread_mutex_unlock(&lock);
    double elapsed = seconds() - started;
    printf("rate %.0f\n", (double)messages / elapsed);
    MQTTClient_disconnect(client, 1000);
    MQTTClient_destroy(&client);
    return 0;
}
