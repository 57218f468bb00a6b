<?php
// A small PHP app for a Bulkhead `kind = "fastcgi"` pool: GET with a query, a POST form, an
// upload, a cookie, a response header and a session counter (see examples/README.md).
session_start();
$_SESSION['visits'] = ($_SESSION['visits'] ?? 0) + 1;
header('X-Powered-By-Pool: ' . (getenv('BULKHEAD_POOL') ?: 'unknown'));
if (isset($_POST['name'])) {
    setcookie('name', $_POST['name']);
}
header('Content-Type: text/plain; charset=utf-8');
echo 'hello ', $_POST['name'] ?? $_GET['name'] ?? $_COOKIE['name'] ?? 'stranger', "\n";
echo 'visits ', $_SESSION['visits'], "\n";
if (isset($_FILES['file']) && $_FILES['file']['error'] === UPLOAD_ERR_OK) {
    echo 'upload ', $_FILES['file']['name'], ' ', $_FILES['file']['size'], ' bytes', "\n";
}
